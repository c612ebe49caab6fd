"""Sandbox support vendor (GraphQL): a helpdesk's customers, tickets and comments as Relay pages.

POST /graphql with `{"query", "variables", "operationName"}` (GET /graphql?query=... works too)
and `Authorization: Bearer <token>`. The schema is `support.graphql` in this package.
Requests that fail before execution (syntax, validation, depth or cost limits) answer 400;
executed ones answer 200 with `data` and, for failed fields, `errors`. With
`support_introspection` off, `__schema` and `__type` queries are refused with 400, as Apollo
Server does in production. A token reads its
tenant's helpdesk; one schema serves every tenant, its resolvers reading the tenant's `Support`
from the execution context.
"""

from integration_platform_sandbox.vendors.support.api import Support, create_app
from integration_platform_sandbox.vendors.support.records import (
    COMMENT_PREFIX,
    CUSTOMER_PREFIX,
    TICKET_PREFIX,
    VENDOR,
    SupportRecords,
    comment_count,
    ground_truth,
    ticket_index,
)
from integration_platform_sandbox.vendors.support.resolvers import SupportResolvers, schema

__all__ = [
    "COMMENT_PREFIX",
    "CUSTOMER_PREFIX",
    "TICKET_PREFIX",
    "VENDOR",
    "Support",
    "SupportRecords",
    "SupportResolvers",
    "comment_count",
    "create_app",
    "ground_truth",
    "schema",
    "ticket_index",
]
