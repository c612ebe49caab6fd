"""Schemathesis against the published OpenAPI schema, on the served API with a real client store:
every request the schema calls valid is accepted (no 400/422), no request gets a 5xx, and
every answer matches the schema.

Each operation runs against a fresh API in which client `acme` exists with credentials for
every source, and every generated request addresses `acme`. Two refusals no static schema can
state are left to their own tests (tests/api/test_syncs.py, test_clients.py): a sync's day
range checked against today and the sources' first day, and credentials a client has not
stored (acme has all of them, and gets them back before each PATCH).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext
from schemathesis.config import SchemathesisConfig

from integration_platform.api.app import create_app
from integration_platform.api.settings import ApiSettings
from integration_platform.clients.credentials import source_variables
from tests.api.conftest import ADMIN_KEY, Api

EXAMPLES_PER_OPERATION = 15
# Every source, every variable its spec references: acme can sync and patch any of them.
EVERY_CREDENTIAL = {
    source: {name: f"acme-{name.lower()}" for name in sorted(variables.all)}
    for source, variables in source_variables().items()
}
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 16,
        "generation": {
            "deterministic": True,
            "max-examples": EXAMPLES_PER_OPERATION,
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}},
        "parameters": {"client_id": "acme"},
    }
)
# The schema the live API serves at /openapi.json (built without starting anything).
schema = schemathesis.openapi.from_dict(
    create_app(
        ApiSettings(
            database_url="sqlite://",
            dagster_url="http://127.0.0.1:9",
            published_warehouse=Path("unused.duckdb"),
        )
    ).openapi(),
    config=CONFIG,
)


@pytest.fixture
def live_api(api: Api) -> Api:
    assert api.http.get("/openapi.json").json() == schema.raw_schema
    created = api.http.post(
        "/clients", json={"id": "acme", "name": "Acme", "credentials": EVERY_CREDENTIAL}
    )
    assert created.status_code == 201, created.text
    return api


def _refused_for_the_day_range(case: schemathesis.Case, response: Any) -> bool:
    """A sync's days are checked against today and each other, which a static schema
    cannot state: such a refusal names only start_date / end_date."""
    if case.operation.label != "POST /integrations/{client_id}/sync" or response.status_code != 422:
        return False
    fields = {field["path"] for field in response.json()["error"]["fields"]}
    return bool(fields) and fields <= {"start_date", "end_date"}


def schema_valid_requests_are_accepted(
    ctx: CheckContext, response: Any, case: schemathesis.Case
) -> bool | None:
    if _refused_for_the_day_range(case, response):
        return None
    return schemathesis.checks.positive_data_acceptance(ctx, response, case)


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_generated_request_is_wrongly_refused_or_gets_a_server_error(
    case: schemathesis.Case,
    live_api: Api,
) -> None:
    if case.operation.label == "PATCH /clients/{client_id}":
        # The request before may have removed some of acme's credentials.
        live_api.http.patch("/clients/acme", json={"credentials": EVERY_CREDENTIAL})
    case.call_and_validate(
        base_url=live_api.url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        additional_checks=[schema_valid_requests_are_accepted],
    )
