"""The source spec: everything a connector needs, declared in YAML and validated here.

Unknown keys are errors (a typo never passes silently). Auth, pagination and entity mappings
have modules of their own; this one holds the source, its endpoints, policies and push sources.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from integration_platform.specs.models.auth import AuthSpec, NoAuth
from integration_platform.specs.models.base import (
    MASKED_VALUES,
    EnvStr,
    JsonPath,
    MaskedEnvStr,
    SecretRef,
    Strict,
)
from integration_platform.specs.models.entity import EntityMappings
from integration_platform.specs.models.pagination import PaginationSpec, SinglePage

# Source, endpoint and stream names become folder names, file names and table names.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_NAME_RULE = "use 1 to 63 lowercase letters, digits and _, starting with a letter"


class RateLimitSpec(Strict):
    requests_per_second: float = Field(gt=0)
    burst: int = Field(1, ge=1, description="requests allowed back to back")
    respect_headers: bool = Field(True, description="slow down on X-RateLimit/RateLimit headers")


class RetrySpec(Strict):
    max_attempts: int = Field(6, ge=1)
    initial_delay_seconds: float = Field(0.5, gt=0)
    max_delay_seconds: float = Field(30.0, gt=0)
    max_elapsed_seconds: float = Field(300.0, gt=0)
    retry_statuses: list[int] = Field(default_factory=lambda: [429, 500, 502, 503, 504])


class TimeoutSpec(Strict):
    connect_seconds: float = Field(5.0, gt=0)
    read_seconds: float = Field(30.0, gt=0)
    write_seconds: float = Field(30.0, gt=0)
    total_seconds: float = Field(120.0, gt=0, description="one request, all attempts excluded")


class CircuitBreakerSpec(Strict):
    failure_threshold: int = Field(10, ge=1, description="consecutive failed attempts to open")
    cooldown_seconds: float = Field(30.0, gt=0)


class IncrementalSpec(Strict):
    """High-water mark of `cursor_field`, sent as `param` on the next run."""

    cursor_field: JsonPath
    param: str
    initial_value: EnvStr | None = None


class PartitionSpec(Strict):
    type: Literal["daily", "none"] = "daily"
    start: date | None = None
    end: date | None = None
    start_param: str | None = Field(None, description="request parameter for the window start")
    end_param: str | None = Field(None, description="request parameter for the window end")
    format: Literal["iso", "epoch", "date"] = "iso"
    field: JsonPath | None = Field(
        None, description="record field whose UTC day is the partition (for pushed records)"
    )

    @model_validator(mode="after")
    def _daily_needs_a_start(self) -> PartitionSpec:
        if self.type == "daily" and (self.start is None or self.start_param is None):
            raise ValueError("daily partitions need `start` (a date) and `start_param`")
        return self


class ParentSpec(Strict):
    """A child endpoint runs once per record of `endpoint` (tickets per customer, ...)."""

    endpoint: str
    fields: dict[str, JsonPath] = Field(description="placeholder name → parent field path")
    concurrency: int = Field(4, ge=1, le=64)


FieldType = Literal["string", "integer", "number", "boolean", "object", "array", "any"]


class ContractField(Strict):
    type: FieldType | list[FieldType] = "any"
    required: bool = True


class SchemaContract(Strict):
    """The fields each record must have. `infer` learns them on the first load."""

    mode: Literal["declared", "infer"] = "infer"
    fields: dict[str, ContractField | FieldType | list[FieldType]] = Field(
        default_factory=dict, description="name → type, [types], or {type, required}"
    )


class EndpointSpec(Strict):
    description: str | None = None
    path: MaskedEnvStr = Field("", description="REST path, relative to base_url")
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, MaskedEnvStr | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, MaskedEnvStr] = Field(default_factory=dict)
    records: JsonPath = Field(
        "", description="where the records are (for GraphQL: inside `data`); empty for the root"
    )
    primary_key: str | list[str]
    pagination: PaginationSpec = Field(default_factory=lambda: SinglePage(type="single"))
    max_pages: int | None = Field(None, ge=1)
    incremental: IncrementalSpec | None = None
    partitions: PartitionSpec = Field(default_factory=lambda: PartitionSpec(type="none"))
    parent: ParentSpec | None = None
    contract: SchemaContract = Field(default_factory=SchemaContract)
    entity: EntityMappings = Field(default_factory=EntityMappings)
    # GraphQL
    query_file: str | None = Field(None, description=".graphql file, relative to the spec")
    variables: dict[str, Any] = Field(default_factory=dict)
    graphql_errors: Literal["fail", "record"] = Field(
        "fail", description="an errors array with HTTP 200: fail the run, or keep data and record"
    )

    @property
    def primary_keys(self) -> list[str]:
        return [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)

    @property
    def is_partitioned(self) -> bool:
        return self.partitions.type == "daily"


def _check_pagination_fits(name: str, endpoint: EndpointSpec, kind: str) -> None:
    """Pagination styles that cannot work for the source's kind, said at load time."""
    style = endpoint.pagination.type
    if kind == "rest" and style == "relay":
        raise ValueError(
            f"endpoints.{name}.pagination: relay pagination is for kind: graphql; REST APIs "
            "page with offset, page_number, cursor, next_url or link_header"
        )
    if kind == "graphql" and style in ("next_url", "link_header"):
        raise ValueError(
            f"endpoints.{name}.pagination: {style} pagination follows URLs, but a GraphQL "
            "source posts every page to one URL: use relay, cursor, offset or "
            "page_number, whose values are sent as query variables"
        )
    if kind == "graphql" and style in ("offset", "page_number", "cursor") and not endpoint.records:
        raise ValueError(
            f"endpoints.{name}.records: set `records` to the path of the list inside the "
            "response's data (e.g. allPeople.people): with "
            f"{style} pagination the engine must know where each page's records are"
        )


class WebhookSpec(Strict):
    """Events the API pushes: verified, deduplicated, landed into the endpoints they update."""

    path: str = Field(pattern=r"^/[A-Za-z0-9_\-/]*$", description="receiver route, e.g. /billing")
    signature: Literal["standard_webhooks", "stripe"]
    secret: SecretRef
    tolerance_seconds: float = Field(300.0, gt=0, description="reject older or newer timestamps")
    max_body_bytes: int = Field(1_000_000, gt=0)
    event_id_path: JsonPath = "id"
    event_type_path: JsonPath = "type"
    object_path: JsonPath = Field("data.object", description="where the API object is")
    routes: dict[str, str] = Field(
        min_length=1, description="event type → endpoint whose raw table receives the object"
    )


class StreamSpec(Strict):
    """A Server-Sent Events stream whose events are records of one endpoint."""

    path: str
    endpoint: str = Field(description="endpoint whose raw table receives the events")
    event_types: list[str] = Field(default_factory=list, description="SSE `event:` names to keep")
    batch_size: int = Field(1000, ge=1, description="events per micro-batch written to raw")
    batch_seconds: float = Field(1.0, gt=0, description="longest wait before a partial batch")
    buffer_events: int = Field(10_000, ge=1, description="bounded buffer: backpressure beyond")


class SourceSpec(Strict):
    source: str = Field(description=_NAME_RULE)
    kind: Literal["rest", "graphql"]
    description: str | None = None
    base_url: EnvStr
    graphql_path: str = Field("/graphql", description="for kind: graphql")
    graphql_validate: bool = Field(
        True,
        description="for kind: graphql: check each query document against the schema the API "
        "answers to introspection (an API that refuses introspection is read unchecked, with "
        "one warning); false skips introspection altogether",
    )
    auth: AuthSpec = Field(default_factory=lambda: NoAuth(type="none"))
    headers: dict[str, MaskedEnvStr] = Field(default_factory=dict)
    rate_limit: RateLimitSpec | None = None
    retry: RetrySpec = Field(default_factory=RetrySpec)
    timeout: TimeoutSpec = Field(default_factory=TimeoutSpec)
    circuit_breaker: CircuitBreakerSpec = Field(default_factory=CircuitBreakerSpec)
    concurrency: int = Field(4, ge=1, le=64, description="requests in flight at once")
    schedule: str | None = Field(None, description="cron (UTC) for scheduled extraction")
    endpoints: dict[str, EndpointSpec] = Field(min_length=1)
    webhooks: WebhookSpec | None = None
    streams: dict[str, StreamSpec] = Field(default_factory=dict)

    _file: Path | None = PrivateAttr(None)
    _masked_values: tuple[str, ...] = PrivateAttr(())

    @property
    def file(self) -> Path | None:
        """The YAML file this spec came from (set by the loader)."""
        return self._file

    @property
    def masked_values(self) -> tuple[str, ...]:
        """What the environment put into `MaskedEnvStr` fields (paths, query, headers, ...)."""
        return self._masked_values

    def query_text(self, endpoint: str) -> str:
        """The GraphQL document of an endpoint, read from its .graphql file beside the spec."""
        query_file = self.endpoints[endpoint].query_file
        if query_file is None or self._file is None:
            raise ValueError(f"{self.source}.{endpoint} has no query file")
        return query_file_path(self._file, query_file).read_text()

    @field_validator("source")
    @classmethod
    def _source_name(cls, value: str) -> str:
        return _check_name("source", value)

    @model_validator(mode="after")
    def _keep_masked_values(self, info: ValidationInfo) -> SourceSpec:
        self._masked_values = tuple(dict.fromkeys((info.context or {}).get(MASKED_VALUES, ())))
        return self

    @model_validator(mode="after")
    def _endpoints_fit_the_kind(self) -> SourceSpec:
        # Each message starts with its key path: pydantic gives an error raised here none.
        for key, kind, names in (
            ("endpoints", "endpoint", self.endpoints),
            ("streams", "stream", self.streams),
        ):
            for name in names:
                try:
                    _check_name(kind, name)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        if self.kind == "rest" and "graphql_validate" in self.model_fields_set:
            raise ValueError("graphql_validate: only for kind: graphql")
        for name, endpoint in self.endpoints.items():
            if self.kind == "graphql" and endpoint.query_file is None:
                raise ValueError(f"endpoints.{name}: graphql endpoints need query_file")
            if self.kind == "rest" and endpoint.query_file is not None:
                raise ValueError(f"endpoints.{name}.query_file: only for kind: graphql")
            _check_pagination_fits(name, endpoint, self.kind)
            if endpoint.parent and endpoint.parent.endpoint not in self.endpoints:
                raise ValueError(
                    f"endpoints.{name}.parent.endpoint: {endpoint.parent.endpoint!r} "
                    "is not an endpoint of this source"
                )
        routed = [
            (f"webhooks.routes.{event}", target)
            for event, target in (self.webhooks.routes.items() if self.webhooks else ())
        ]
        routed += [(f"streams.{name}.endpoint", s.endpoint) for name, s in self.streams.items()]
        for where, target in routed:
            if target not in self.endpoints:
                raise ValueError(
                    f"{where}: push target {target!r} is not an endpoint of this source; "
                    f"endpoints: {', '.join(self.endpoints)}"
                )
        return self


def _check_name(kind: str, name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        shown = name if len(name) <= 70 else name[:70] + "..."
        raise ValueError(f"{kind} name {shown!r}: {_NAME_RULE} (it names folders and tables)")
    return name


def query_file_path(spec_file: Path, query_file: str) -> Path:
    """The query file, which must be inside the spec's folder; ValueError otherwise.

    Resolved (symlinks followed) before the check, so neither `../` nor a link can make a
    spec read a file from elsewhere.
    """
    folder = spec_file.resolve().parent
    path = (folder / query_file).resolve()
    if Path(query_file).is_absolute() or not path.is_relative_to(folder):
        raise ValueError(
            f"query_file {query_file!r} is outside the spec's folder {folder}: "
            "keep .graphql files beside the spec (or in a subfolder)"
        )
    return path
