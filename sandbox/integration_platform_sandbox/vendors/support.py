"""Sandbox support vendor (GraphQL): a helpdesk's customers, tickets and comments as Relay pages.

POST /graphql with `{"query", "variables", "operationName"}` (GET /graphql?query=... works too)
and `Authorization: Bearer <token>`. The schema is `support.graphql` beside this module.
Requests that fail before execution (syntax, validation, depth or cost limits) answer 400;
executed ones answer 200 with `data` and, for failed fields, `errors`. With
`support_introspection` off, `__schema` and `__type` queries are refused with 400, as Apollo
Server does in production. A token reads its
tenant's helpdesk; one schema serves every tenant, its resolvers reading the tenant's `Support`
from the execution context.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import cache, cached_property
from importlib import resources
from typing import Any

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    default_field_resolver,
    execute_sync,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.population import mix64, rng_for, unit_interval
from integration_platform_sandbox.roster import ChildIndex, Timeline
from integration_platform_sandbox.tenants import PerTenant, Tenants
from integration_platform_sandbox.vendors.common import (
    JSONResponse,
    TruthRow,
    VendorAdmin,
    authenticated,
    build_vendor_app,
    error_response,
    iso,
    parse_timestamp,
)
from integration_platform_sandbox.vendors.query_limits import QueryLimits, measure
from integration_platform_sandbox.world import World

VENDOR = "support"
CUSTOMER_PREFIX, TICKET_PREFIX, COMMENT_PREFIX = "cus", "tkt", "cmt"
SCHEMA_SDL = resources.files(__name__.rpartition(".")[0]).joinpath("support.graphql").read_text()
MAX_FIRST = 100
LIMITS = QueryLimits(max_depth=6, max_cost=5000)
TICKETS_PER_CUSTOMER = 1.5
MAX_COMMENTS = 5  # a ticket has 0..MAX_COMMENTS-1 comments
# Parsing runs before any limit can be measured, so the document's size is capped first.
MAX_QUERY_CHARS, MAX_QUERY_TOKENS = 100_000, 10_000

# Salts keep each kind of derived value independent of the others.
_TICKET_SALT, _COMMENT_SALT, _FAILURE_SALT = 0x5071, 0x5072, 0x5073

STATUSES, STATUS_WEIGHTS = ("open", "pending", "solved", "closed"), (0.2, 0.15, 0.4, 0.25)
PRIORITIES, PRIORITY_WEIGHTS = ("low", "normal", "high", "urgent"), (0.25, 0.5, 0.2, 0.05)
CHANNELS, CHANNEL_WEIGHTS = ("email", "chat", "phone", "web"), (0.5, 0.2, 0.1, 0.2)
SUBJECTS = (
    "Cannot log in to my account",
    "Refund for a duplicate charge",
    "Export to CSV fails",
    "How do I add a team member?",
    "Invoice shows the wrong address",
    "App crashes on start",
    "Password reset email never arrives",
    "Question about upgrading my plan",
    "Sync with calendar stopped working",
    "Please close my account",
    "Feature request: dark mode",
    "Two-factor code not accepted",
)
CUSTOMER_LINES = (
    "Hi, this is still happening for me.",
    "Any update on this?",
    "Thanks, that fixed it!",
    "I attached a screenshot of the error.",
    "It worked yesterday, nothing changed on my side.",
)
AGENT_LINES = (
    "Thanks for reaching out, we are looking into it.",
    "Could you send us a screenshot?",
    "This should be fixed now, please try again.",
    "I have escalated this to engineering.",
    "Closing this ticket as solved; reply to reopen it.",
)
AGENTS = ("Dana (Support)", "Luis (Support)", "Priya (Support)", "Sam (Billing Team)")


def ticket_index(world: World) -> ChildIndex:
    """Which customer position each ticket belongs to: tickets are children of customers."""
    customers = len(world.roster(VENDOR))
    return ChildIndex(
        children=round(TICKETS_PER_CUSTOMER * customers),
        parents=customers,
        seed=world.settings.seed,
        salt=_TICKET_SALT,
    )


def comment_count(seed: int, ticket: int) -> int:
    return mix64(seed, _COMMENT_SALT, ticket) % MAX_COMMENTS


def encode_cursor(scope: str, slot: int) -> str:
    return base64.urlsafe_b64encode(f"{scope}:{slot}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> int:
    """The slot a cursor points at; GraphQLError unless this connection issued it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    cursor_scope, _, slot = raw.rpartition(":")
    if cursor_scope != scope or not (slot.isascii() and slot.isdigit()):
        raise GraphQLError(
            f"after={cursor!r} is not a cursor this connection issued: pass an "
            "endCursor from the same connection, or omit after to start over"
        )
    return int(slot)


class _Node:
    """A customer or ticket: the id is known at once, other fields are generated on first read.

    So `{ id }` alone, or a page only counted through `totalCount`, stays cheap.
    """

    def __init__(
        self, record_id: str, position: int, make: Callable[[int], dict[str, Any]]
    ) -> None:
        self.id = record_id
        self.position = position
        self._make = make

    @cached_property
    def record(self) -> dict[str, Any]:
        return self._make(self.position)


def _resolve_field(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    if isinstance(source, _Node):
        return source.id if info.field_name == "id" else source.record[info.field_name]
    return default_field_resolver(source, info, **args)


class Support:
    """One tenant's helpdesk: its customers, tickets and comments, and the queries it refused."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        self.world = world
        self.engine = engine
        self.seed = world.settings.seed
        self.roster = world.roster(VENDOR)
        self.tickets = ticket_index(world)
        self.ticket_timeline = Timeline(self.tickets.children, self.seed, _TICKET_SALT)
        self.schema = schema()
        self.rules: tuple[type[ASTValidationRule], ...] = tuple(specified_rules)
        if not world.settings.support_introspection:
            self.rules += (NoSchemaIntrospectionCustomRule,)
        self.rejected = {"depth": 0, "cost": 0, "introspection": 0}
        self.comment_failures = 0

    # -- records ---------------------------------------------------------------------------

    def customer_node(self, position: int) -> _Node:
        return _Node(
            self.world.record_id(CUSTOMER_PREFIX, position), position, self.customer_record
        )

    def ticket_node(self, ticket: int) -> _Node:
        return _Node(self.world.record_id(TICKET_PREFIX, ticket), ticket, self.ticket_record)

    def customer_record(self, position: int) -> dict[str, Any]:
        world = self.world
        ident = noisy_identity(world.population, self.roster, position)
        r = rng_for(self.seed, self.roster.record_salt(position), 0x5)
        updated = self.roster.timeline.at(position)
        created = updated - timedelta(days=r.randrange(0, 500), seconds=r.randrange(86400))
        # People type what they like into a helpdesk form: a full name, a first name, nothing.
        style = r.random()
        parts = (ident.first_name,) if style < 0.2 else (ident.first_name, ident.last_name)
        name = " ".join(part for part in parts if part) if style < 0.95 else None
        organization = world.population.company(ident.company_id).name if r.random() < 0.7 else None
        email, email_address = ident.email, None
        drift_from = self.engine.settings.schema_drift_from
        if drift_from is not None and updated.date() >= drift_from:
            # The vendor's contact-model migration: clients see `email` renamed `emailAddress`.
            email, email_address = None, email
        return {
            "name": name or None,
            "email": email,
            "emailAddress": email_address,
            "phone": ident.phone,
            "organization": organization,
            "createdAt": iso(created),
            "updatedAt": iso(updated),
        }

    def _ticket_times(self, ticket: int) -> tuple[datetime, datetime]:
        r = rng_for(self.seed, _TICKET_SALT, ticket, 1)
        updated = self.ticket_timeline.at(ticket)
        return updated - timedelta(minutes=r.randrange(5, 60 * 24 * 45)), updated

    def ticket_record(self, ticket: int) -> dict[str, Any]:
        r = rng_for(self.seed, _TICKET_SALT, ticket)
        created, updated = self._ticket_times(ticket)
        return {
            "subject": r.choice(SUBJECTS),
            "status": r.choices(STATUSES, STATUS_WEIGHTS)[0],
            "priority": r.choices(PRIORITIES, PRIORITY_WEIGHTS)[0],
            "channel": r.choices(CHANNELS, CHANNEL_WEIGHTS)[0],
            "createdAt": iso(created),
            "updatedAt": iso(updated),
        }

    def comment(self, ticket: int, index: int, count: int, requester: str) -> dict[str, Any]:
        r = rng_for(self.seed, _COMMENT_SALT, ticket, index)
        created, updated = self._ticket_times(ticket)
        # The first comment is the request itself; later ones spread up to the last update.
        at = created + (updated - created) * index / max(1, count - 1)
        by_customer = index == 0 or r.random() < 0.4
        return {
            "id": self.world.record_id(COMMENT_PREFIX, ticket * MAX_COMMENTS + index),
            "author": requester if by_customer else r.choice(AGENTS),
            "body": r.choice(
                SUBJECTS if index == 0 else CUSTOMER_LINES if by_customer else AGENT_LINES
            ),
            "public": by_customer or r.random() < 0.7,
            "createdAt": iso(at),
        }

    @cached_property
    def comment_total(self) -> int:
        return sum(comment_count(self.seed, ticket) for ticket in range(self.tickets.children))

    # -- resolvers ---------------------------------------------------------------------------

    def _connection(
        self,
        scope: str,
        slots: range,
        args: dict[str, Any],
        default_first: int,
        node: Callable[[int], Any],
    ) -> dict[str, Any]:
        """One Relay page over `slots`; each cursor names the slot of its edge."""
        first = args.get("first")
        first = default_first if first is None else first
        if not 0 <= first <= MAX_FIRST:
            raise GraphQLError(f"first={first} is out of range: expected 0..{MAX_FIRST}")
        after = args.get("after")
        start = slots.start if after is None else max(slots.start, decode_cursor(after, scope) + 1)
        page = range(start, max(start, min(slots.stop, start + first)))
        end_cursor = encode_cursor(scope, page[-1]) if page else None
        has_next = page.stop < slots.stop
        page_number = (page.stop - slots.start + first - 1) // first if first else 0
        if after is not None and self.engine.settings.repeat_cursor_at_page == page_number:
            end_cursor, has_next = after, True  # a buggy API handing back the cursor it got
        return {
            "edges": [{"cursor": encode_cursor(scope, slot), "node": node(slot)} for slot in page],
            "pageInfo": {"hasNextPage": has_next, "endCursor": end_cursor},
            "totalCount": len(slots),
        }

    @staticmethod
    def _window(timeline: Timeline, args: dict[str, Any]) -> range:
        try:
            since = parse_timestamp(args.get("updatedSince"), "updatedSince")
            until = parse_timestamp(args.get("updatedBefore"), "updatedBefore")
        except HTTPException as exc:
            raise GraphQLError(exc.detail) from None
        return timeline.positions_between(since, until)

    def resolve_customers(
        self, _root: object, _info: GraphQLResolveInfo, **args: Any
    ) -> dict[str, Any]:
        return self._connection(
            "customers", self._window(self.roster.timeline, args), args, 50, self.customer_node
        )

    def resolve_tickets(
        self, _root: object, _info: GraphQLResolveInfo, **args: Any
    ) -> dict[str, Any]:
        return self._connection(
            "tickets", self._window(self.ticket_timeline, args), args, 50, self.ticket_node
        )

    def resolve_customer(
        self, _root: object, _info: GraphQLResolveInfo, **args: Any
    ) -> _Node | None:
        position = self.world.position_of(CUSTOMER_PREFIX, args["id"])
        if position is None or position >= len(self.roster):
            return None
        return self.customer_node(position)

    def resolve_customer_tickets(
        self, customer: _Node, _info: GraphQLResolveInfo, **args: Any
    ) -> dict[str, Any]:
        children: Sequence[int] = self.tickets.children_of(customer.position)
        return self._connection(
            f"customer/{customer.position}/tickets",
            range(len(children)),
            args,
            20,
            lambda index: self.ticket_node(children[index]),
        )

    def resolve_ticket_customer(self, ticket: _Node, _info: GraphQLResolveInfo) -> _Node:
        return self.customer_node(self.tickets.parent_of(ticket.position))

    def resolve_ticket_comments(
        self, ticket: _Node, _info: GraphQLResolveInfo, **args: Any
    ) -> dict[str, Any]:
        share = self.engine.settings.graphql_partial_errors
        # Keyed by ticket, not by request: a retry hits the same broken tickets.
        if share > 0 and unit_interval(self.seed, _FAILURE_SALT, ticket.position) < share:
            self.comment_failures += 1
            raise GraphQLError(
                "comments service unavailable: try again later",
                extensions={"code": "UPSTREAM_UNAVAILABLE"},
            )
        count = comment_count(self.seed, ticket.position)
        requester = self._requester(ticket.position) if count else ""
        return self._connection(
            f"ticket/{ticket.position}/comments",
            range(count),
            args,
            20,
            lambda index: self.comment(ticket.position, index, count, requester),
        )

    def _requester(self, ticket: int) -> str:
        customer = self.customer_record(self.tickets.parent_of(ticket))
        return str(customer["name"] or customer["email"] or customer["emailAddress"] or "Customer")

    # -- HTTP --------------------------------------------------------------------------------

    async def graphql(self, request: Request) -> Response:
        try:
            query, variables, operation_name = await _read_graphql_request(request)
            return self._run(query, variables, operation_name)
        except GraphQLError as exc:
            return _rejected([exc])

    def _run(self, query: str, variables: dict[str, Any], operation_name: str | None) -> Response:
        document = parse(
            query, max_source_length=MAX_QUERY_CHARS, max_lexical_tokens=MAX_QUERY_TOKENS
        )
        invalid = validate(self.schema, document, self.rules)
        if invalid:
            if any("introspection has been disabled" in error.message for error in invalid):
                self.rejected["introspection"] += 1
            return _rejected(invalid)
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return _rejected(
                [
                    GraphQLError(
                        f"no operation named {operation_name!r}"
                        if operation_name
                        else "the document has several operations: pass operationName"
                    )
                ]
            )
        if operation.operation != OperationType.QUERY:
            return _rejected(
                [GraphQLError(f"this API only answers queries, not {operation.operation.value}s")]
            )
        coerced = get_variable_values(self.schema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return _rejected(coerced)
        refused = self._over_limits(document, operation, coerced)
        if refused:
            return refused
        # Runs on the event loop on purpose: population.company shares one Faker instance,
        # and pages are small (at most LIMITS.max_cost nodes).
        result = execute_sync(
            self.schema,
            document,
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=_resolve_field,
            context_value=self,
        )
        return JSONResponse(result.formatted)

    def _over_limits(
        self, document: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any]
    ) -> Response | None:
        violation = LIMITS.violation(measure(self.schema, document, operation, variables))
        if violation is None:
            return None
        limit, error = violation
        self.rejected[limit] += 1
        return _rejected([error])

    def stats(self) -> dict[str, Any]:
        return {
            "counts": {
                "customers": len(self.roster),
                "tickets": self.tickets.children,
                "comments": self.comment_total,
            },
            "rejected_queries": dict(self.rejected),
            "comment_failures": self.comment_failures,
        }


async def _read_graphql_request(request: Request) -> tuple[str, dict[str, Any], str | None]:
    """(query, variables, operationName) from a POST JSON body or GET query parameters."""
    if request.method == "GET":
        params = request.query_params
        raw_variables = params.get("variables")
        try:
            variables = orjson.loads(raw_variables) if raw_variables else None
        except orjson.JSONDecodeError:
            raise GraphQLError("variables is not valid JSON") from None
        body: Any = {
            "query": params.get("query"),
            "variables": variables,
            "operationName": params.get("operationName"),
        }
    else:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise GraphQLError(
                'the body is not JSON: send {"query": "...", "variables": {}}'
            ) from None
    if not isinstance(body, dict):
        raise GraphQLError('the body must be a JSON object: {"query": "...", "variables": {}}')
    query, variables, operation_name = (
        body.get("query"),
        body.get("variables"),
        body.get("operationName"),
    )
    if not isinstance(query, str) or not query.strip():
        raise GraphQLError("query is missing: send the GraphQL document as a string")
    if variables is not None and not isinstance(variables, dict):
        raise GraphQLError("variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise GraphQLError("operationName must be a string")
    return query, variables or {}, operation_name


def _rejected(errors: Sequence[GraphQLError]) -> Response:
    return JSONResponse({"errors": [error.formatted for error in errors]}, status_code=400)


def create_app(tenants: Tenants, engine: ChaosEngine) -> ASGIApp:
    helpdesks = PerTenant(tenants, lambda world: Support(world, engine))

    async def authenticate(request: Request) -> int | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return error_response(
                401,
                "invalid_token",
                "missing Bearer token",
                {"www-authenticate": 'Bearer realm="support"'},
            )
        tenant = tenants.find(support_api_token=token.strip())
        if tenant is None:
            return error_response(
                401,
                "invalid_token",
                "the API token is not valid",
                {"www-authenticate": 'Bearer error="invalid_token"'},
            )
        return tenant

    routes: list[BaseRoute] = [
        Route(
            "/graphql",
            authenticated(authenticate, helpdesks, Support.graphql),
            methods=["GET", "POST"],
        )
    ]
    admin = VendorAdmin(VENDOR, ground_truth, lambda tenant: helpdesks[tenant].stats())
    return build_vendor_app(tenants, engine, admin, routes)


@cache
def schema() -> GraphQLSchema:
    """The helpdesk's schema, built once: each resolver calls the `Support` it runs for."""
    built = build_schema(SCHEMA_SDL)
    resolvers: dict[tuple[str, str], Callable[..., Any]] = {
        ("Query", "customers"): Support.resolve_customers,
        ("Query", "tickets"): Support.resolve_tickets,
        ("Query", "customer"): Support.resolve_customer,
        ("Customer", "tickets"): Support.resolve_customer_tickets,
        ("Ticket", "customer"): Support.resolve_ticket_customer,
        ("Ticket", "comments"): Support.resolve_ticket_comments,
    }
    for (type_name, field_name), resolve in resolvers.items():
        owner = built.get_type(type_name)
        assert isinstance(owner, GraphQLObjectType), type_name
        owner.fields[field_name].resolve = _for_tenant(resolve)
    return built


def _for_tenant(resolve: Callable[..., Any]) -> Callable[..., Any]:
    def resolver(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        return resolve(info.context, source, info, **args)

    return resolver


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow(
            "customers", world.record_id(CUSTOMER_PREFIX, position), roster.entity(position)
        )
