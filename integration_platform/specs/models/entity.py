"""How an endpoint's records map onto canonical entities: the `entity:` block of an endpoint."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from integration_platform.specs.models.base import JsonPath, Strict

# The canonical customer fields entity resolution compares (ARCHITECTURE.md).
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
