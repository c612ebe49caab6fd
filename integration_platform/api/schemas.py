"""Request and response bodies (pydantic): what the OpenAPI schema at /openapi.json shows.

The request schemas state everything the API checks on its own: the credentials' sources and
variables come from the specs, so a request the schema calls valid is refused only for what
depends on stored state or on today (see the field descriptions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from integration_platform.client_ids import CLIENT_ID_PATTERN
from integration_platform.clients.variables import source_variables
from integration_platform.orchestration.plan import MAX_DAYS_PER_SYNC

# What a credential value must hold besides whitespace (`.strip()` leaves a character
# exactly when this matches: Python's regex whitespace is str.isspace()).
NOT_BLANK = r"\S"
# A name: something besides whitespace, and no control characters (PostgreSQL cannot store
# NUL in text; the others have no place in a display name). What pydantic strips (Unicode
# White_Space) is whitespace here too, so a name this matches is never refused.
DISPLAY_NAME = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
MAX_SECRET_LENGTH = 4096

ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
SecretValue = Annotated[str, StringConstraints(max_length=MAX_SECRET_LENGTH)]


def _no_control_characters(name: str) -> str:
    if CONTROL_CHARACTER.search(name):
        raise ValueError(
            "a name cannot hold control characters (\\x00-\\x1f, \\x7f): send it as one line "
            "of text"
        )
    return name


@dataclass(frozen=True)
class _Pattern:
    """A pattern shown in the JSON schema that a validator with a plainer message enforces."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(core_schema), "pattern": self.pattern}


# Stripped, then 1-200 characters, none of them a control character: exactly DISPLAY_NAME.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_control_characters),
    _Pattern(DISPLAY_NAME),
]


@dataclass(frozen=True)
class _KnownSources:
    """In the JSON schema, a source name is one of the specs' (read when the schema is built;
    an unknown one is refused with the list of known ones)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": sorted(source_variables())}


@dataclass(frozen=True)
class _SpecCredentials:
    """In the JSON schema, credentials are per source exactly the variables its spec
    references; the values are checked (with messages per variable) by the client registry."""

    patch: bool

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return credentials_json_schema(patch=self.patch)


def credentials_json_schema(*, patch: bool) -> JsonSchemaValue:
    """Per source an object of its variables: all required ones when registering; in a merge
    patch any of them, null removing an optional one (a required one can only be replaced)."""

    def value() -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_SECRET_LENGTH,
            "pattern": NOT_BLANK,
        }

    sources: dict[str, Any] = {}
    for source, variables in sorted(source_variables().items()):
        properties = {
            name: {"anyOf": [value(), {"type": "null"}]}
            if patch and name in variables.optional
            else value()
            for name in sorted(variables.all)
        }
        source_schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if not patch:
            source_schema["required"] = sorted(variables.required)
        sources[source] = {"anyOf": [source_schema, {"type": "null"}]} if patch else source_schema
    return {"type": "object", "properties": sources, "additionalProperties": False}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientCreate(Strict):
    id: ClientId | None = Field(
        None,
        description="Lowercase slug (a Dagster partition key); when left out or null, derived "
        "from the name (`Acme Corp.` → `acme-corp`; a name without enough Latin letters or "
        "digits gets `client-` and 8 hex digits).",
    )
    name: Name
    credentials: Annotated[
        dict[SourceName, dict[VariableName, SecretValue]], _SpecCredentials(patch=False)
    ] = Field(
        default_factory=dict,
        description="Per source, values for the variables its spec references, e.g. "
        '{"crm": {"CRM_CLIENT_ID": "...", "CRM_CLIENT_SECRET": "...", '
        '"CRM_BASE_URL": "https://..."}}. Write-only: never returned.',
    )


class ClientPatch(Strict):
    name: Name | None = None
    credentials: (
        Annotated[
            dict[SourceName, dict[VariableName, SecretValue | None] | None],
            _SpecCredentials(patch=True),
        ]
        | None
    ) = Field(
        None,
        description="JSON merge patch of the credentials: a value sets (rotates) a "
        "variable, null removes an optional one, a source set to null removes all of "
        "that source's credentials. A source the client has no credentials for yet must be "
        "given every variable its spec requires.",
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
    next_cursor: str | None = Field(
        description="The last client's id when more follow (pass it as `cursor`); else null."
    )


class SyncCreate(Strict):
    sources: (
        Annotated[list[Annotated[SourceName, _KnownSources()]], Field(min_length=1, max_length=50)]
        | None
    ) = Field(
        None,
        description="Sources to sync, each one the client has credentials for; "
        "default: every source the client has credentials for.",
    )
    start_date: date | None = Field(
        None,
        description="First day (UTC); default: end_date. Not after end_date, nor before the "
        f"first day of the sources' data; the range spans at most {MAX_DAYS_PER_SYNC} days.",
    )
    end_date: date | None = Field(
        None, description="Last day (UTC), a day that has ended; default: yesterday."
    )
    full_refresh: bool = Field(False, description="Ignore incremental marks; replace the days.")

    @field_validator("sources", mode="before")
    @classmethod
    def _at_least_one(cls, sources: object) -> object:
        if sources == []:
            raise ValueError(
                "name at least one source, or leave the field out to sync every "
                "source the client has credentials for"
            )
        return sources


class RunLink(BaseModel):
    run_id: str
    url: str


class SyncOut(BaseModel):
    id: str
    client_id: str
    state: Literal["queued", "extracting", "transforming", "succeeded", "failed"] = Field(
        description="Read from Dagster when asked. queued: its runs are being launched; "
        "extracting: raw runs queued or running; transforming: raw runs succeeded, Dagster's "
        "automation has not yet built every dbt asset downstream of them; succeeded; failed "
        "(see error; a canceled run fails the sync)."
    )
    sources: list[str]
    start_date: date
    end_date: date
    full_refresh: bool
    reused: Literal["idempotency_key", "already_running"] | None = Field(
        None, description="Set when this answer returns an existing sync instead of a new one."
    )
    raw_runs: dict[str, RunLink]
    transform_run: RunLink | None = Field(
        description="The dbt run (launched by Dagster's automation) created after the raw runs "
        "ended that is building, built or failed the sync's dbt assets; null until there is one."
    )
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
    next_cursor: str | None = Field(
        description="The last customer's customer_id when more follow (pass it as "
        "`cursor`); else null."
    )


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
