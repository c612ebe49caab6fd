"""Sandbox insurer (REST): members with names, birth dates, addresses and a national id.

GET /api/members takes `offset` (>= 0) and `limit` (1..500, default 100) and answers
`{"members": [...], "total": N, "offset": o, "limit": l}`; HTTP Basic auth
(`INSURER_USERNAME` / `INSURER_PASSWORD`). No email, no phone: a member has `name: {given,
family}`, `born` (epoch seconds of the birth date at midnight UTC, negative before 1970),
`address: {number, street, locality, postcode, region, country}` and `national_id`. The
insurer's forms reject dates that do not exist, so a mistyped one is missing instead.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from datetime import UTC, datetime
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
)
from integration_platform_sandbox.world import World

VENDOR = "insurer"
MEMBER_PREFIX = "mb"
MAX_LIMIT = 500


def epoch_of(birth_digits: str | None) -> int | None:
    """Epoch seconds of a YYYYMMDD date at midnight UTC; None when it is no real date."""
    if birth_digits is None:
        return None
    try:
        born = datetime.strptime(birth_digits, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(born.timestamp())


class Insurer:
    """One tenant's members."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.roster = world.roster(VENDOR)

    def member(self, position: int) -> dict[str, Any]:
        world = self.world
        person = registry_person(world.population, self.roster, position, world.settings.noise)
        r = rng_for(world.settings.seed, self.roster.record_salt(position), 22)
        return {
            "member_no": world.record_id(MEMBER_PREFIX, position),
            "name": {"given": person.given_name, "family": person.surname},
            "born": epoch_of(person.birth_digits),
            "address": {
                "number": person.street_number,
                "street": person.street_name,
                "locality": person.suburb,
                "postcode": person.postcode,
                "region": person.state,
                "country": person.country,
            },
            "national_id": (
                national_id_format(person.national_id, person.country, r)
                if person.national_id
                else None
            ),
            "updated": int(self.roster.timeline.epoch(position)),
        }

    async def members(self, request: Request) -> Response:
        limit = int_param(request, "limit", 100, lo=1, hi=MAX_LIMIT)
        offset = int_param(request, "offset", 0, lo=0, hi=2**31)
        rows = [self.member(p) for p in range(offset, min(offset + limit, len(self.roster)))]
        return JSONResponse(
            {"members": rows, "total": len(self.roster), "offset": offset, "limit": limit}
        )

    def stats(self) -> dict[str, Any]:
        return {"counts": {"members": len(self.roster)}}


def create_app(tenants: Tenants, engine: ChaosEngine) -> ASGIApp:
    insurers = PerTenant(tenants, Insurer)

    async def authenticate(request: Request) -> int | Response:
        given = _basic_credentials(request.headers.get("authorization", ""))
        tenant = (
            None
            if given is None
            else tenants.find(insurer_username=given[0], insurer_password=given[1])
        )
        if tenant is None:
            return error_response(
                401,
                "unauthorized",
                "HTTP Basic credentials are required",
                {"www-authenticate": 'Basic realm="insurer"'},
            )
        return tenant

    routes = [Route("/api/members", authenticated(authenticate, insurers, Insurer.members))]
    admin = VendorAdmin(VENDOR, ground_truth, lambda tenant: insurers[tenant].stats())
    return build_vendor_app(tenants, engine, admin, routes)


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic Authorization header; None when it is not one."""
    if not authorization.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow("members", world.record_id(MEMBER_PREFIX, position), roster.entity(position))
