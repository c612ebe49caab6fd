"""APIs shaped unlike the sandbox's, served for real on loopback: what real APIs do.

- REST `GET /people?page=&per_page=`: the body is a bare JSON array (no envelope, no total);
  people have names and a date of birth, no email.
- REST `GET /account`: one JSON object, which is one record.
- REST `GET /export`: one bare array larger than DuckDB's 16 MB default object size.
- REST `GET /keys`: one bare array of records whose `id`s are anything JSON allows: strings,
  integers, and values that cannot be keys (booleans, objects, lists, null, "", NUL, 1.5).
- GraphQL `POST /graphql`: `allPeople(page:, perPage:)` (page numbers as query variables),
  `peopleSlice(limit:, offset:)` (offsets as variables, with a total), and
  `peopleConnection(first:, after:)`, a Relay connection that lists `nodes` (no `edges`).
- GraphQL `POST /graphql-hidden`: the same API behind a gateway that hides its schema: an
  introspection query gets HTTP 200 `{"data": {"__schema": null}}` and no errors.
- GraphQL `POST /graphql-busy`: the same API behind a busy gateway: the first time it sees a
  request body it answers HTTP 503 with a GraphQL-shaped `{"errors": [...]}` body.
"""

from __future__ import annotations

from typing import Any

from graphql import build_schema, graphql, parse, validate
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PEOPLE = 23
EXPORT_ROWS = 16_500  # ~17 MB as JSON


def person(i: int) -> dict[str, Any]:
    first = ["Ada", "Grace", "Alan", "Edsger", "Barbara"][i % 5]
    return {
        "id": f"p{i:03d}",
        "given_name": first,
        "family_name": f"Family{i}",
        "dob": f"19{50 + i % 40:02d}{1 + i % 12:02d}{1 + i % 28:02d}",
        "address": {"number": str(i + 1), "street": "Main Street"},
    }


SCHEMA = build_schema("""
type Person { id: ID!  given_name: String  family_name: String  dob: String }
type PeoplePage { people: [Person!]!  totalPages: Int! }
type PeopleSlice { items: [Person!]!  total: Int! }
type PageInfo { hasNextPage: Boolean!  endCursor: String }
type PeopleConnection { nodes: [Person!]!  pageInfo: PageInfo! }
type Query {
  allPeople(page: Int = 1, perPage: Int = 10): PeoplePage!
  peopleSlice(limit: Int = 10, offset: Int = 0): PeopleSlice!
  peopleConnection(first: Int = 10, after: String): PeopleConnection!
}
""")


class _Root:
    def allPeople(self, _info: Any, page: int, perPage: int) -> dict[str, Any]:
        start = (page - 1) * perPage
        return {
            "people": [person(i) for i in range(start, min(start + perPage, PEOPLE))],
            "totalPages": -(-PEOPLE // perPage),
        }

    def peopleSlice(self, _info: Any, limit: int, offset: int) -> dict[str, Any]:
        return {
            "items": [person(i) for i in range(offset, min(offset + limit, PEOPLE))],
            "total": PEOPLE,
        }

    def peopleConnection(self, _info: Any, first: int, after: str | None = None) -> dict[str, Any]:
        start = int(after) if after else 0
        end = min(start + first, PEOPLE)
        return {
            "nodes": [person(i) for i in range(start, end)],
            "pageInfo": {"hasNextPage": end < PEOPLE, "endCursor": str(end)},
        }


async def people(request: Request) -> Response:
    page = int(request.query_params.get("page", 1))
    size = int(request.query_params.get("per_page", 10))
    start = (page - 1) * size
    return JSONResponse([person(i) for i in range(start, min(start + size, PEOPLE))])


async def account(_: Request) -> Response:
    return JSONResponse({"id": "acct_1", "plan": "enterprise", "seats": 40})


# (id, what the loader says about it: None for a key, else the dead letter's reason)
ODD_KEYS: list[tuple[Any, str | None]] = [
    ("k-1", None),
    (42, None),
    ("42", None),  # the same key as 42: the later record wins
    (True, "primary key 'id' is the boolean true; a key must be a string or an integer"),
    ({"v": 1}, "primary key 'id' is an object; a key must be a string or an integer"),
    ([1, 2], "primary key 'id' is a list; a key must be a string or an integer"),
    (None, "primary key 'id' is null"),
    ("", "primary key 'id' is an empty string"),
    ("k\x002", "primary key 'id' holds the control character U+0000"),
    (
        1.5,
        "primary key 'id' is the number 1.5, with a fraction or an exponent; "
        "a key must be a string or an integer",
    ),
]


async def keys(_: Request) -> Response:
    return JSONResponse([{"id": key, "n": n} for n, (key, _) in enumerate(ODD_KEYS)])


async def export(_: Request) -> Response:
    return JSONResponse(
        [{**person(i), "id": f"e{i:05d}", "notes": "n" * 1000} for i in range(EXPORT_ROWS)]
    )


async def graphql_endpoint(request: Request) -> Response:
    body = await request.json()
    result = await graphql(
        SCHEMA,
        body["query"],
        root_value=_Root(),
        variable_values=body.get("variables"),
        operation_name=body.get("operationName"),
    )
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    return JSONResponse(payload)


async def graphql_hiding_its_schema(request: Request) -> Response:
    body = await request.json()  # starlette keeps it: graphql_endpoint reads it again
    if validate(SCHEMA, parse(body["query"]), [NoSchemaIntrospectionCustomRule]):
        return JSONResponse({"data": {"__schema": None}})
    return await graphql_endpoint(request)


_turned_away: set[bytes] = set()


async def graphql_when_not_busy(request: Request) -> Response:
    body = await request.body()
    if body not in _turned_away:
        _turned_away.add(body)
        return JSONResponse({"errors": [{"message": "upstream busy, try again"}]}, status_code=503)
    return await graphql_endpoint(request)


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/people", people),
            Route("/account", account),
            Route("/export", export),
            Route("/keys", keys),
            Route("/graphql", graphql_endpoint, methods=["POST"]),
            Route("/graphql-hidden", graphql_hiding_its_schema, methods=["POST"]),
            Route("/graphql-busy", graphql_when_not_busy, methods=["POST"]),
        ]
    )
