"""The source spec: everything a connector needs, declared in YAML and validated here.

Unknown keys are errors (a typo never passes silently). String values may hold `${VAR}` or
`${VAR:-default}` references, resolved from the environment given in the validation context;
secret fields must be references, so a secret can only ever come from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

# `${VAR}` or `${VAR:-default}`: group 1 is the name, group 2 the default (None when absent).
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Source, endpoint and stream names become folder names, file names and table names.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_NAME_RULE = "use 1 to 63 lowercase letters, digits and _, starting with a letter"


def _environment(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context or {}
    env = context.get("env")
    if env is None:
        raise ValueError("internal: specs must be validated with an environment in context")
    return env  # type: ignore[no-any-return]


def interpolate(value: str, env: Mapping[str, str], resolved: list[str] | None = None) -> str:
    """Replace each `${VAR}` / `${VAR:-default}`; a missing variable without default is an error.

    The values taken from `env` are appended to `resolved` when given."""

    def resolve(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            if resolved is not None:
                resolved.append(env[name])
            return env[name]
        if default is not None:
            return default
        raise ValueError(
            f"environment variable {name} is not set: export it before running "
            "(config/sandbox.env holds the sandbox's demo values; real credentials belong in "
            "your environment or the repository's .env)"
        )

    return ENV_REFERENCE.sub(resolve, value)


def _env_str(value: Any, info: ValidationInfo) -> Any:
    return interpolate(value, _environment(info)) if isinstance(value, str) else value


# Where the resolution of one spec collects the values that `MaskedEnvStr` fields took from the
# environment (in the validation context, which pydantic hands to every nested validator).
MASKED_VALUES = "masked_values"


def _masked_env_str(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    context = info.context or {}
    return interpolate(value, _environment(info), context.setdefault(MASKED_VALUES, []))


def _secret_ref(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str) or not ENV_REFERENCE.fullmatch(value.strip()):
        raise ValueError(
            "secrets must come from the environment: write a reference such as "
            "${MY_API_SECRET}, never the secret itself"
        )
    return interpolate(value.strip(), _environment(info))


EnvStr = Annotated[str, BeforeValidator(_env_str)]
# A value that may carry a credential though the spec does not call it a secret: a `${VAR}` in
# an endpoint's path, query or headers, a source's headers, custom auth options. What the
# environment puts there is masked in logs and messages like a secret
# (`SourceSpec.masked_values`); base_url and token_url stay readable, as they say where.
MaskedEnvStr = Annotated[str, BeforeValidator(_masked_env_str)]
SecretRef = Annotated[SecretStr, BeforeValidator(_secret_ref)]
JsonPath = Annotated[str, Field(pattern=r"^$|^[A-Za-z0-9_\-\[\]*]+(\.[A-Za-z0-9_\-\[\]*]+)*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- auth -------------------------------------------------------------------------------------


class NoAuth(Strict):
    type: Literal["none"]


class ApiKeyAuth(Strict):
    type: Literal["api_key"]
    name: EnvStr = Field(description="header or query parameter name")
    value: SecretRef
    location: Literal["header", "query"] = Field("header", alias="in")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BearerAuth(Strict):
    type: Literal["bearer"]
    token: SecretRef


class BasicAuth(Strict):
    type: Literal["basic"]
    username: EnvStr
    password: SecretRef


class OAuth2ClientCredentials(Strict):
    type: Literal["oauth2_client_credentials"]
    token_url: EnvStr = Field(description="absolute, or relative to base_url")
    client_id: EnvStr
    client_secret: SecretRef
    scope: EnvStr | None = None
    client_auth: Literal["body", "basic"] = "body"
    refresh_margin_seconds: float = Field(30.0, ge=0, description="renew this long before expiry")


class HmacAuth(Strict):
    """Signs each request: HMAC over a canonical string built from a template."""

    type: Literal["hmac"]
    key_id: EnvStr
    secret: SecretRef
    algorithm: Literal["sha256", "sha512", "sha1"] = "sha256"
    canonical: str = Field(
        "{method}\n{path_query}\n{timestamp}\n{body_sha256}",
        description="placeholders: method, path, query, path_query, timestamp, body_sha256, key_id",
    )
    headers: dict[str, str] = Field(
        default_factory=lambda: {
            "X-Key-Id": "{key_id}",
            "X-Timestamp": "{timestamp}",
            "X-Signature": "{signature}",
        },
        description="headers to send; placeholders as in canonical, plus signature",
    )
    encoding: Literal["hex", "base64"] = "hex"


class CustomAuth(Strict):
    """A Python class `module:Name` implementing httpx.Auth, built with `options`."""

    type: Literal["custom"]
    class_path: str = Field(alias="class", pattern=r"^[\w.]+:\w+$")
    options: dict[str, MaskedEnvStr] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


AuthSpec = Annotated[
    NoAuth | ApiKeyAuth | BearerAuth | BasicAuth | OAuth2ClientCredentials | HmacAuth | CustomAuth,
    Field(discriminator="type"),
]


# -- pagination -------------------------------------------------------------------------------


class SinglePage(Strict):
    type: Literal["single"]


class OffsetPagination(Strict):
    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    page_size: int = Field(100, ge=1)
    total_path: JsonPath | None = Field(None, description="where the response says the total")


class PageNumberPagination(Strict):
    type: Literal["page_number"]
    page_param: str = "page"
    size_param: str = "per_page"
    page_size: int = Field(100, ge=1)
    first_page: int = 1
    total_pages_path: JsonPath | None = None


class CursorPagination(Strict):
    type: Literal["cursor"]
    cursor_path: JsonPath = Field(description="where the response holds the next cursor")
    cursor_param: str = "cursor"
    page_size: int | None = Field(None, ge=1)
    size_param: str = "limit"


class NextUrlPagination(Strict):
    type: Literal["next_url"]
    next_url_path: JsonPath
    page_size: int | None = Field(None, ge=1)
    size_param: str = "limit"


class LinkHeaderPagination(Strict):
    """RFC 8288 `Link: <...>; rel="next"`."""

    type: Literal["link_header"]
    rel: str = "next"
    page_size: int | None = Field(None, ge=1)
    size_param: str = "per_page"


class RelayPagination(Strict):
    """GraphQL Relay connections: `connection_path` may point into nested objects."""

    type: Literal["relay"]
    connection_path: JsonPath = Field(description="e.g. customers, or customer.tickets")
    page_size: int = Field(50, ge=1)
    size_variable: str = "first"
    cursor_variable: str = "after"


PaginationSpec = Annotated[
    SinglePage
    | OffsetPagination
    | PageNumberPagination
    | CursorPagination
    | NextUrlPagination
    | LinkHeaderPagination
    | RelayPagination,
    Field(discriminator="type"),
]


# -- policies ---------------------------------------------------------------------------------


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


CANONICAL_CUSTOMER_FIELDS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "full_name",
        "date_of_birth",
        "company",
        "address_line",
        "city",
        "postcode",
        "state",
        "country",
        "updated_at",
    }
)

# -- entity mappings --------------------------------------------------------------------------

# strftime/strptime directives DuckDB parses (a format it cannot parse would fail dbt at run
# time, so the spec refuses it at load time)
_DATE_DIRECTIVES = frozenset(
    {
        "a",
        "A",
        "w",
        "d",
        "-d",
        "b",
        "B",
        "h",
        "m",
        "-m",
        "y",
        "-y",
        "Y",
        "j",
        "-j",
        "H",
        "-H",
        "I",
        "-I",
        "p",
        "M",
        "-M",
        "S",
        "-S",
        "f",
        "g",
        "n",
        "z",
        "Z",
        "U",
        "W",
        "%",
    }
)
EPOCH_FORMATS = frozenset({"epoch", "epoch_ms"})
_FORMAT_HELP = (
    'use strptime directives such as "%Y%m%d" or "%d/%m/%Y", or epoch '
    "(seconds) / epoch_ms (milliseconds)"
)


def _date_format(value: str) -> str:
    if value in EPOCH_FORMATS:
        return value
    directives = re.findall(r"%(-?.)", value)
    unknown = [f"%{d}" for d in directives if d not in _DATE_DIRECTIVES]
    if unknown:
        raise ValueError(f"{value!r} has unknown directive(s) {', '.join(unknown)}: {_FORMAT_HELP}")
    parts = {d.lstrip("-") for d in directives}
    if (
        "'" in value
        or not (parts & {"Y", "y"})
        or not ("j" in parts or (parts & {"m", "b", "B", "h"} and "d" in parts))
    ):
        raise ValueError(
            f"{value!r} is not a date format (it needs a year, month and day, "
            f"and no quotes): {_FORMAT_HELP}"
        )
    return value


def _as_list(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise ValueError(f"expected a date format or a list of them: {_FORMAT_HELP}")


class FieldSource(Strict):
    """Where one canonical field's value is in a record: one JSON path, or several joined.

    In YAML a plain string is a path (`postcode: address.zip`); the object form adds a date
    `format` (`{path: dob, format: "%Y%m%d"}`, a list of formats tried in order, or `epoch`)
    or composes the value (`{concat: [street_number, street_name], sep: " "}`).
    """

    path: JsonPath | None = None
    concat: list[JsonPath] | None = Field(
        None, min_length=2, description="paths whose values are joined by `sep`"
    )
    sep: str = Field(" ", max_length=8, pattern=r"^[^'\\]*$")
    format: Annotated[list[str], BeforeValidator(_as_list)] | None = Field(
        None, description="date_of_birth only: strptime format(s) tried in order, epoch or epoch_ms"
    )

    @field_validator("format")
    @classmethod
    def _date_formats(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for format_ in value:
                _date_format(format_)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FieldSource:
        if (self.path is None) == (self.concat is None):
            raise ValueError("give either `path` (one JSON path) or `concat` (a list of paths)")
        formats = self.formats
        if len(formats) > 1 and set(formats) & EPOCH_FORMATS:
            raise ValueError(
                "epoch formats cannot be combined with other formats: a number "
                "such as 19151111 would be ambiguous"
            )
        return self

    @property
    def paths(self) -> list[str]:
        return [self.path] if self.path is not None else list(self.concat or [])

    @property
    def formats(self) -> list[str]:
        return list(self.format or [])


def _field_source(value: Any) -> Any:
    if isinstance(value, str):
        return {"path": value}
    if isinstance(value, dict | FieldSource):
        return value
    raise ValueError(
        "expected a JSON path (address.zip), {path: ..., format: ...} or "
        '{concat: [path, path], sep: " "}'
    )


FieldMapping = Annotated[FieldSource, BeforeValidator(_field_source)]
# names an identifier may not take: they are columns or comparisons of entity resolution already
_RESERVED_IDENTIFIERS = CANONICAL_CUSTOMER_FIELDS | {
    "external_id",
    "address",
    "identifier",
    "identifiers",
}


class CustomerMapping(Strict):
    """The canonical customer fields an endpoint's records carry, for entity resolution.

    `identifiers` maps any number of ids (national_id, tax_id, ...) that each compare on their
    own comparison levels (seed er_comparison_levels; kinds without rows there use the
    `identifier` rows).
    """

    email: FieldMapping | None = None
    phone: FieldMapping | None = None
    first_name: FieldMapping | None = None
    last_name: FieldMapping | None = None
    full_name: FieldMapping | None = None
    date_of_birth: FieldMapping | None = None
    company: FieldMapping | None = None
    address_line: FieldMapping | None = None
    city: FieldMapping | None = None
    postcode: FieldMapping | None = None
    state: FieldMapping | None = None
    country: FieldMapping | None = None
    updated_at: FieldMapping | None = None
    external_id: FieldMapping | None = None
    identifiers: dict[str, FieldMapping] = Field(default_factory=dict)

    @field_validator("identifiers")
    @classmethod
    def _identifier_names(cls, value: dict[str, FieldSource]) -> dict[str, FieldSource]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(
                    f"identifier name {name!r}: use lowercase letters, digits and "
                    "_ (e.g. national_id, tax_id)"
                )
            if name in _RESERVED_IDENTIFIERS:
                raise ValueError(
                    f"identifier name {name!r} is a canonical field: map it as "
                    "one, or name the identifier differently"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = set(value) - set(cls.model_fields)
            if unknown:
                raise ValueError(
                    f"unknown customer field(s) {sorted(unknown)}: canonical fields are "
                    f"{sorted(CANONICAL_CUSTOMER_FIELDS | {'external_id'})}, plus "
                    "identifiers: {name: path}"
                )
        return value

    @model_validator(mode="after")
    def _formats_only_for_dates(self) -> CustomerMapping:
        dated = [
            name
            for name, source in self.fields.items()
            if source.format is not None and name != "date_of_birth"
        ]
        dated += [
            f"identifiers.{name}"
            for name, source in self.identifiers.items()
            if source.format is not None
        ]
        if dated:
            raise ValueError(f"{', '.join(dated)}: `format` applies to date_of_birth only")
        return self

    @property
    def fields(self) -> dict[str, FieldSource]:
        """The mapped canonical fields (identifiers apart), in declaration order."""
        return {
            name: source
            for name in type(self).model_fields
            if name != "identifiers" and (source := getattr(self, name)) is not None
        }


class EntityMappings(Strict):
    """How an endpoint's records map onto canonical entities; each entity is optional."""

    customer: CustomerMapping | None = None
    subscription: dict[str, JsonPath] | None = None
    invoice: dict[str, JsonPath] | None = None
    payment: dict[str, JsonPath] | None = None
    ticket: dict[str, JsonPath] | None = None
    usage_event: dict[str, JsonPath] | None = None
    company: dict[str, JsonPath] | None = None


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
