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
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from integration_platform.sandbox.chaos import ChaosEngine
from integration_platform.sandbox.population import rng_for
from integration_platform.sandbox.registry import national_id_format, registry_person
from integration_platform.sandbox.vendors.common import (
    JSONResponse,
    TruthRow,
    VendorAdmin,
    build_vendor_app,
    error_response,
    int_param,
)
from integration_platform.sandbox.world import World

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
    def __init__(self, world: World) -> None:
        self.world = world
        self.roster = world.roster(VENDOR)

    def member(self, position: int) -> dict[str, Any]:
        world = self.world
        person = registry_person(world.population, self.roster, position)
        r = rng_for(world.settings.seed, self.roster.record_salt(position), 22)
        return {
            "member_no": world.record_id(MEMBER_PREFIX, position),
            "name": {"given": person.given_name, "family": person.surname},
            "born": epoch_of(person.birth_digits),
            "address": {"number": person.street_number, "street": person.street_name,
                        "locality": person.suburb, "postcode": person.postcode,
                        "region": person.state, "country": person.country},
            "national_id": (national_id_format(person.national_id, person.country, r)
                            if person.national_id else None),
            "updated": int(self.roster.timeline.epoch(position)),
        }

    def _authorized(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        try:
            user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(
                ":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        credentials = self.world.credentials
        return (auth.startswith("Basic ")
                and secrets.compare_digest(user, credentials.insurer_username)
                and secrets.compare_digest(password, credentials.insurer_password))

    async def members(self, request: Request) -> Response:
        if not self._authorized(request):
            return error_response(401, "unauthorized", "HTTP Basic credentials are required",
                                  {"www-authenticate": 'Basic realm="insurer"'})
        limit = int_param(request, "limit", 100, lo=1, hi=MAX_LIMIT)
        offset = int_param(request, "offset", 0, lo=0, hi=2**31)
        rows = [self.member(p) for p in range(offset, min(offset + limit, len(self.roster)))]
        return JSONResponse({"members": rows, "total": len(self.roster), "offset": offset,
                             "limit": limit})

    def stats(self) -> dict[str, Any]:
        return {"counts": {"members": len(self.roster)}}


def create_app(world: World, engine: ChaosEngine) -> ASGIApp:
    insurer = Insurer(world)
    admin = VendorAdmin(VENDOR, lambda: ground_truth(world), insurer.stats)
    return build_vendor_app(world, engine, admin, [Route("/api/members", insurer.members)])


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow("members", world.record_id(MEMBER_PREFIX, position),
                       roster.entity(position))
