"""Sandbox CRM (REST): OAuth2 client credentials, opaque cursor pagination, mixed timestamps.

GET /v2/contacts and /v2/companies take `cursor`, `limit` (1..500, default 100),
`updated_since` and `updated_before` (ISO 8601 or epoch seconds) and answer
`{"data": [...], "next_cursor": "...", "links": {"next": URL}}` with a `Link: <URL>; rel="next"`
header; the last page has none of the three. A token reads the records of the tenant whose
client id and secret it was issued to.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.population import rng_for
from integration_platform_sandbox.roster import Timeline
from integration_platform_sandbox.tenants import PerTenant, Tenants
from integration_platform_sandbox.vendors.common import (
    JSONResponse,
    TruthRow,
    VendorAdmin,
    authenticated,
    build_vendor_app,
    error_response,
    int_param,
    parse_timestamp,
)
from integration_platform_sandbox.world import World

VENDOR = "crm"
CONTACT_PREFIX, COMPANY_PREFIX = "ct", "co"
LIFECYCLE_STAGES = ("lead", "customer", "Customer", "CUSTOMER", "churned", "opportunity")
_OFFSETS = tuple(timezone(timedelta(hours=h)) for h in (-8, -5, -4, 0, 1, 2, 5.5, 9))


class TokenStore:
    """Issued access tokens: the tenant each was issued to, and when it expires."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._issued: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self.issued: Counter[int] = Counter()

    def issue(self, tenant: int) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._issued = {t: (k, e) for t, (k, e) in self._issued.items() if e > now}
            self._issued[token] = (tenant, now + self.ttl_seconds)
            self.issued[tenant] += 1
        return token

    def tenant_of(self, token: str) -> int | None:
        """The tenant a live token was issued to; None for an unknown or expired one."""
        with self._lock:
            tenant, expiry = self._issued.get(token, (None, 0.0))
        return tenant if expiry > time.monotonic() else None


def encode_cursor(position: int, since: datetime | None, until: datetime | None) -> str:
    state = {
        "p": position,
        "s": since.timestamp() if since else None,
        "u": until.timestamp() if until else None,
    }
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime | None, datetime | None]:
    try:
        state = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = int(state["p"])
        since = datetime.fromtimestamp(state["s"], UTC) if state["s"] is not None else None
        until = datetime.fromtimestamp(state["u"], UTC) if state["u"] is not None else None
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise HTTPException(400, f"cursor {cursor!r} is not one this API issued") from None
    return position, since, until


def _mixed_timestamp(moment: datetime, style: int) -> str | int:
    """Timestamps as this CRM stores them: whatever each integration wrote."""
    if style == 0:
        return int(moment.timestamp())
    if style == 1:
        return moment.astimezone(_OFFSETS[int(moment.timestamp()) % len(_OFFSETS)]).isoformat(
            timespec="seconds"
        )
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CRM:
    """One tenant's CRM: its contacts and companies."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        self.world = world
        self.engine = engine
        self.roster = world.roster(VENDOR)
        self.company_timeline = Timeline(
            world.population.company_count, world.settings.seed, 0xC0C0
        )

    # -- records ---------------------------------------------------------------------------

    def contact(self, position: int) -> dict[str, Any]:
        world = self.world
        ident = noisy_identity(world.population, self.roster, position, world.settings.noise)
        r = rng_for(world.settings.seed, self.roster.record_salt(position), 7)
        updated = self.roster.timeline.at(position)
        created = updated - timedelta(days=r.randrange(0, 400), seconds=r.randrange(86400))
        record: dict[str, Any] = {
            "id": world.record_id(CONTACT_PREFIX, position),
            "first_name": ident.first_name,
            "last_name": ident.last_name,
            "email": ident.email,
            "phone": ident.phone,
            "company_id": (
                world.record_id(COMPANY_PREFIX, ident.company_id) if r.random() < 0.85 else None
            ),
            "address": None
            if ident.address is None
            else {
                "street": ident.address.street,
                "city": ident.address.city,
                "state": ident.address.state,
                "zip": ident.address.postcode,
                "country": ident.address.country,
            },
            "birthday": ident.date_of_birth.isoformat() if ident.date_of_birth else None,
            "lifecycle_stage": r.choice(LIFECYCLE_STAGES),
            "lead_score": r.randrange(0, 100),
            "created_at": _mixed_timestamp(created, r.randrange(3)),
            "updated_at": _mixed_timestamp(updated, r.randrange(3)),
        }
        drift_from = self.engine.settings.schema_drift_from
        if drift_from is not None and updated.date() >= drift_from:
            # The vendor's v2.1 rollout: `email` renamed, `lead_score` now a string.
            record["email_address"] = record.pop("email")
            record["lead_score"] = f"{record['lead_score']}/100"
        return record

    def company(self, company_id: int) -> dict[str, Any]:
        company = self.world.population.company(company_id)
        return {
            "id": self.world.record_id(COMPANY_PREFIX, company_id),
            "name": company.name,
            "domain": company.domain,
            "industry": company.industry,
            "employee_count": company.employee_count,
            "updated_at": _mixed_timestamp(self.company_timeline.at(company_id), company_id % 3),
        }

    # -- HTTP --------------------------------------------------------------------------------

    def _page(
        self, request: Request, timeline: Timeline, make: Callable[[int], dict[str, Any]]
    ) -> Response:
        limit = int_param(request, "limit", 100, lo=1, hi=500)
        cursor = request.query_params.get("cursor")
        if cursor:
            start, since, until = decode_cursor(cursor)
        else:
            since = parse_timestamp(request.query_params.get("updated_since"), "updated_since")
            until = parse_timestamp(request.query_params.get("updated_before"), "updated_before")
            start = timeline.positions_between(since, until).start
        window = timeline.positions_between(since, until)
        end = min(window.stop, max(start, window.start) + limit)
        body: dict[str, Any] = {"data": [make(p) for p in range(max(start, window.start), end)]}
        page_number = (end - window.start + limit - 1) // limit
        if self.engine.settings.repeat_cursor_at_page == page_number and cursor:
            body["next_cursor"] = cursor  # a buggy API handing back the cursor it was given
        elif end < window.stop:
            body["next_cursor"] = encode_cursor(end, since, until)
        headers = {}
        if "next_cursor" in body:
            # The same next page as a URL, in the body and as an RFC 8288 Link header, as
            # many APIs offer it: clients may follow whichever they prefer.
            following = str(
                request.url.remove_query_params(
                    ["cursor", "updated_since", "updated_before"]
                ).include_query_params(cursor=body["next_cursor"], limit=limit)
            )
            body["links"] = {"next": following}
            headers["link"] = f'<{following}>; rel="next"'
        return JSONResponse(body, headers=headers)

    async def contacts(self, request: Request) -> Response:
        return self._page(request, self.roster.timeline, self.contact)

    async def companies(self, request: Request) -> Response:
        return self._page(request, self.company_timeline, self.company)

    def stats(self) -> dict[str, Any]:
        return {"counts": {"contacts": len(self.roster), "companies": self.company_timeline.count}}


class Authorization:
    """The CRM's OAuth2 server: client credentials in, a token bound to their tenant out."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self.tokens = TokenStore(tenants.settings.token_ttl_seconds)

    async def token(self, request: Request) -> Response:
        # OAuth2 token requests are application/x-www-form-urlencoded (RFC 6749 §4.4.2).
        form = dict(parse_qsl((await request.body()).decode("latin-1")))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:]).decode()
            except (binascii.Error, UnicodeDecodeError):
                return error_response(400, "invalid_request", "malformed Basic credentials")
            client_id, _, client_secret = decoded.partition(":")
        if form.get("grant_type") != "client_credentials":
            return error_response(
                400, "unsupported_grant_type", "only grant_type=client_credentials is supported"
            )
        tenant = self.tenants.find(
            crm_client_id=str(client_id or ""), crm_client_secret=str(client_secret or "")
        )
        if tenant is None:
            return error_response(401, "invalid_client", "unknown client_id or wrong secret")
        ttl = self.tokens.ttl_seconds
        return JSONResponse(
            {
                "access_token": self.tokens.issue(tenant),
                "token_type": "Bearer",
                "expires_in": int(ttl) if ttl >= 1 else ttl,
            }
        )

    async def authenticate(self, request: Request) -> int | Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return error_response(
                401,
                "invalid_token",
                "missing Bearer token",
                {"www-authenticate": 'Bearer realm="crm"'},
            )
        tenant = self.tokens.tenant_of(auth[7:])
        if tenant is None:
            return error_response(
                401,
                "invalid_token",
                "the access token is invalid or expired",
                {"www-authenticate": 'Bearer error="invalid_token"'},
            )
        return tenant


def create_app(tenants: Tenants, engine: ChaosEngine) -> ASGIApp:
    crms = PerTenant(tenants, lambda world: CRM(world, engine))
    oauth = Authorization(tenants)
    routes = [
        Route("/oauth/token", oauth.token, methods=["POST"]),
        Route("/v2/contacts", authenticated(oauth.authenticate, crms, CRM.contacts)),
        Route("/v2/companies", authenticated(oauth.authenticate, crms, CRM.companies)),
    ]

    def stats(tenant: int) -> dict[str, Any]:
        return {**crms[tenant].stats(), "tokens_issued": oauth.tokens.issued[tenant]}

    return build_vendor_app(tenants, engine, VendorAdmin(VENDOR, ground_truth, stats), routes)


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow(
            "contacts", world.record_id(CONTACT_PREFIX, position), roster.entity(position)
        )
