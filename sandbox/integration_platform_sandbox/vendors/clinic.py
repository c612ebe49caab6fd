"""Sandbox clinic (REST): a patient index with names, birth dates, addresses and a national id.

GET /v1/patients takes `page` (1-based) and `per_page` (1..500, default 100) and answers
`{"patients": [...], "page": p, "per_page": n, "total_pages": t}`; a static bearer token
(`CLINIC_API_TOKEN`). No email, no phone: FEBRL-style fields (given_name, surname,
street_number, address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id). Dates
of birth are `YYYYMMDD` strings, except the legacy import's `DD/MM/YYYY`; after a typo one may
be no real date (the clinic's system never checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.population import rng_for
from integration_platform_sandbox.registry import national_id_format, registry_person
from integration_platform_sandbox.tenants import PerTenant, Tenants
from integration_platform_sandbox.vendors.common import (
    JSONResponse,
    TruthRow,
    VendorAdmin,
    authenticated,
    build_vendor_app,
    error_response,
    int_param,
    iso,
)
from integration_platform_sandbox.world import World

VENDOR = "clinic"
PATIENT_PREFIX = "pt"
LEGACY_DATE_SHARE = 0.15
MAX_PER_PAGE = 500


class Clinic:
    """One tenant's patient index."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.roster = world.roster(VENDOR)

    def patient(self, position: int) -> dict[str, Any]:
        world = self.world
        person = registry_person(world.population, self.roster, position, world.settings.noise)
        r = rng_for(world.settings.seed, self.roster.record_salt(position), 21)
        birth = person.birth_digits
        if birth is not None and r.random() < LEGACY_DATE_SHARE:
            birth = f"{birth[6:]}/{birth[4:6]}/{birth[:4]}"
        return {
            "patient_id": world.record_id(PATIENT_PREFIX, position),
            "given_name": person.given_name,
            "surname": person.surname,
            "street_number": person.street_number,
            "address_1": person.street_name,
            "address_2": person.unit,
            "suburb": person.suburb,
            "postcode": person.postcode,
            "state": person.state,
            "date_of_birth": birth,
            "soc_sec_id": (
                national_id_format(person.national_id, person.country, r)
                if person.national_id
                else None
            ),
            "updated_at": iso(self.roster.timeline.at(position)),
        }

    async def patients(self, request: Request) -> Response:
        per_page = int_param(request, "per_page", 100, lo=1, hi=MAX_PER_PAGE)
        total_pages = max(1, -(-len(self.roster) // per_page))
        page = int_param(request, "page", 1, lo=1, hi=2**31)
        start = (page - 1) * per_page
        rows = [self.patient(p) for p in range(start, min(start + per_page, len(self.roster)))]
        return JSONResponse(
            {"patients": rows, "page": page, "per_page": per_page, "total_pages": total_pages}
        )

    def stats(self) -> dict[str, Any]:
        return {"counts": {"patients": len(self.roster)}}


def create_app(tenants: Tenants, engine: ChaosEngine) -> ASGIApp:
    clinics = PerTenant(tenants, Clinic)

    async def authenticate(request: Request) -> int | Response:
        auth = request.headers.get("authorization", "")
        tenant = (
            tenants.find(clinic_api_token=auth.removeprefix("Bearer "))
            if auth.startswith("Bearer ")
            else None
        )
        if tenant is None:
            return error_response(
                401,
                "unauthorized",
                "a valid Bearer token is required",
                {"www-authenticate": 'Bearer realm="clinic"'},
            )
        return tenant

    routes = [Route("/v1/patients", authenticated(authenticate, clinics, Clinic.patients))]
    admin = VendorAdmin(VENDOR, ground_truth, lambda tenant: clinics[tenant].stats())
    return build_vendor_app(tenants, engine, admin, routes)


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow(
            "patients", world.record_id(PATIENT_PREFIX, position), roster.entity(position)
        )
