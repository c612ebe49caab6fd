"""Request and response bodies (pydantic): what the OpenAPI schema at /openapi.json shows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from integration_platform.clients.slugs import CLIENT_ID_PATTERN

ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
SecretValue = Annotated[str, StringConstraints(max_length=4096)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientCreate(Strict):
    id: ClientId | None = Field(
        None,
        description="Lowercase slug (a Dagster partition key); "
        "derived from the name when left out.",
    )
    name: Name
    credentials: dict[SourceName, dict[VariableName, SecretValue]] = Field(
        default_factory=dict,
        description="Per source, values for the variables its spec references, e.g. "
        '{"crm": {"CRM_CLIENT_ID": "...", "CRM_CLIENT_SECRET": "...", '
        '"CRM_BASE_URL": "https://..."}}. Write-only: never returned.',
    )


class ClientPatch(Strict):
    name: Name | None = None
    credentials: dict[SourceName, dict[VariableName, SecretValue | None] | None] | None = Field(
        None,
        description="JSON merge patch of the credentials: a value sets (rotates) a "
        "variable, null removes it, a source set to null removes all of "
        "that source's credentials.",
    )


class CredentialSummary(BaseModel):
    variables: list[str] = Field(description="The variables set (their values are never shown).")
    rotated_at: datetime


class ClientOut(BaseModel):
    id: str
    name: str
    active: bool
    uses_environment_credentials: bool = Field(
        description="The operator's own client (the demo): runs read credentials from the "
        "platform's environment."
    )
    credentials: dict[str, CredentialSummary]
    dagster_partition_registered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None


class ClientPage(BaseModel):
    data: list[ClientOut]
    next_cursor: str | None


class SyncCreate(Strict):
    sources: Annotated[list[SourceName], Field(max_length=50)] | None = Field(
        None, description="Sources to sync; default: every source the client has credentials for."
    )
    start_date: date | None = Field(None, description="First day (UTC); default: end_date.")
    end_date: date | None = Field(None, description="Last day (UTC); default: yesterday.")
    full_refresh: bool = Field(False, description="Ignore incremental marks; replace the days.")


class RunLink(BaseModel):
    run_id: str
    url: str


class SyncOut(BaseModel):
    id: str
    client_id: str
    state: Literal["queued", "extracting", "transforming", "succeeded", "failed"]
    sources: list[str]
    start_date: date
    end_date: date
    full_refresh: bool
    reused: Literal["idempotency_key", "already_running"] | None = Field(
        None, description="Set when this answer returns an existing sync instead of a new one."
    )
    raw_runs: dict[str, RunLink]
    transform_run: RunLink | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class LastErrorOut(BaseModel):
    message: str
    run_id: str
    run_url: str
    at: datetime


class StageOut(BaseModel):
    state: str = Field(
        description="never_run, queued, running, retrying, succeeded, failed, "
        "canceled, or unknown (Dagster could not be asked)"
    )
    run_id: str | None
    run_url: str | None
    run_started_at: datetime | None
    run_ended_at: datetime | None
    last_error: LastErrorOut | None
    freshness: dict[str, datetime] = Field(
        description="Per asset, when it last materialized for this client."
    )


class SourceStatusOut(StageOut):
    source: str
    records: int | None
    rows_loaded: int | None
    retries: int | None
    throttled_429s: int | None
    dead_letters: int | None


class StatusOut(BaseModel):
    client_id: str
    sync: SyncOut | None = Field(description="The client's latest sync.")
    sources: list[SourceStatusOut]
    transform: StageOut
    dagster_error: str | None = Field(
        None, description="Set when Dagster could not be asked: states are then `unknown`."
    )


class CustomerPageOut(BaseModel):
    data: list[dict[str, Any]] = Field(description="Golden records (marts.dim_customers).")
    next_cursor: str | None


class ProvenanceOut(BaseModel):
    field_sources: dict[str, Any] = Field(
        description="Per field group, the source record it survived from."
    )
    record_keys: list[str]
    source_systems: list[str]


class CustomerOut(BaseModel):
    customer: dict[str, Any]
    customer_360: dict[str, Any] | None
    provenance: ProvenanceOut


class CheckOut(BaseModel):
    ok: bool
    detail: str


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckOut]


class LiveOut(BaseModel):
    status: Literal["ok"]
