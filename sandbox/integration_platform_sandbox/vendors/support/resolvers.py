"""Sandbox support's GraphQL schema and resolvers: Relay connections over the records, with
opaque cursors, time windows and the comment failures chaos asks for."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from functools import cache, cached_property
from importlib import resources
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    default_field_resolver,
)
from starlette.exceptions import HTTPException

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.population import unit_interval
from integration_platform_sandbox.roster import Timeline
from integration_platform_sandbox.vendors.common import parse_timestamp
from integration_platform_sandbox.vendors.support.records import (
    CUSTOMER_PREFIX,
    TICKET_PREFIX,
    SupportRecords,
    comment_count,
)
from integration_platform_sandbox.world import World

SCHEMA_SDL = resources.files(__name__.rpartition(".")[0]).joinpath("support.graphql").read_text()
MAX_FIRST = 100
_FAILURE_SALT = 0x5073


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


def resolve_field(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    if isinstance(source, _Node):
        return source.id if info.field_name == "id" else source.record[info.field_name]
    return default_field_resolver(source, info, **args)


class SupportResolvers(SupportRecords):
    """One tenant's helpdesk as the schema's resolvers see it."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        super().__init__(world, engine)
        self.comment_failures = 0

    def customer_node(self, position: int) -> _Node:
        return _Node(
            self.world.record_id(CUSTOMER_PREFIX, position), position, self.customer_record
        )

    def ticket_node(self, ticket: int) -> _Node:
        return _Node(self.world.record_id(TICKET_PREFIX, ticket), ticket, self.ticket_record)

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


@cache
def schema() -> GraphQLSchema:
    """The helpdesk's schema, built once: each resolver calls the `Support` it runs for."""
    built = build_schema(SCHEMA_SDL)
    resolvers: dict[tuple[str, str], Callable[..., Any]] = {
        ("Query", "customers"): SupportResolvers.resolve_customers,
        ("Query", "tickets"): SupportResolvers.resolve_tickets,
        ("Query", "customer"): SupportResolvers.resolve_customer,
        ("Customer", "tickets"): SupportResolvers.resolve_customer_tickets,
        ("Ticket", "customer"): SupportResolvers.resolve_ticket_customer,
        ("Ticket", "comments"): SupportResolvers.resolve_ticket_comments,
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
