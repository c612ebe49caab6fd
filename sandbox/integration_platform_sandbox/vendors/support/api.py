"""Sandbox support's HTTP API: POST or GET /graphql, each document parsed, validated, measured
against the depth and cost limits, then executed for the token's tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.tenants import PerTenant, Tenants
from integration_platform_sandbox.vendors.common import (
    JSONResponse,
    VendorAdmin,
    authenticated,
    build_vendor_app,
    error_response,
)
from integration_platform_sandbox.vendors.query_limits import QueryLimits, measure
from integration_platform_sandbox.vendors.support.records import VENDOR, ground_truth
from integration_platform_sandbox.vendors.support.resolvers import (
    SupportResolvers,
    resolve_field,
    schema,
)
from integration_platform_sandbox.world import World

LIMITS = QueryLimits(max_depth=6, max_cost=5000)
# Parsing runs before any limit can be measured, so the document's size is capped first.
MAX_QUERY_CHARS, MAX_QUERY_TOKENS = 100_000, 10_000


class Support(SupportResolvers):
    """One tenant's helpdesk: its customers, tickets and comments, and the queries it refused."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        super().__init__(world, engine)
        self.schema = schema()
        self.rules: tuple[type[ASTValidationRule], ...] = tuple(specified_rules)
        if not world.settings.support_introspection:
            self.rules += (NoSchemaIntrospectionCustomRule,)
        self.rejected = {"depth": 0, "cost": 0, "introspection": 0}

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
            field_resolver=resolve_field,
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
