"""dbt unit tests of the identity normalizers, generated for every customer staging model.

The normalizers (macros/normalize.sql) run inside the generated `stg_<source>__<endpoint>`
models, whose names depend on the specs; so their unit tests are generated too: messy values
(aliased Gmail addresses, phone formats, ZIP+4, accents, "Last, First") are placed at the
spec's JSON paths, and the test expects the normalized columns. A spec change cannot leave a
unit test pointing at a model that no longer exists. A composed field (`concat`) gets the
cases' words split over its paths; a date of birth gets cases in the spec's own formats.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.specs.models import CustomerMapping, FieldSource

# canonical field -> (raw value, expected normalized value) cases, in row order
FIELD_CASES: dict[str, list[tuple[str, str | None]]] = {
    "email": [
        (" John.Doe+News@GMail.com ", "johndoe@gmail.com"),
        ("Jane.Roe+billing@Example.COM", "jane.roe@example.com"),
        ("not an email", None),
    ],
    "phone": [
        ("+1 (415) 555-0100", "4155550100"),
        ("0044 20 7946 0958", "2079460958"),
        ("555-0100", None),
    ],
    "first_name": [(" José ", "jose"), ("ANNE-MARIE", "anne-marie"), ("Zoë", "zoe")],
    "last_name": [
        ("Müller-Lüdenscheidt", "muller-ludenscheidt"),
        ("O'Brien", "obrien"),
        ("Groß", "gross"),
    ],
    "postcode": [("94105-1234", "94105"), ("sw1a 1aa", "SW1A1AA"), ("10115", "10115")],
    "address_line": [
        ("12 Main Street", "12 main st"),
        ("1697 Lothar-Lachmann-Straße", "1697 lothar lachmann str"),
        ("928 Handestr.", "928 handestr"),
    ],
}
IDENTIFIER_CASES: list[tuple[str, str | None]] = [
    (" 123-45-6789 ", "123456789"),
    ("ab 12 cd", "AB12CD"),
    ("--", None),
]
# a full name is split when the spec maps no first/last name: raw -> (first, last)
FULL_NAME_CASES: list[tuple[str, tuple[str | None, str | None]]] = [
    ("Doe, Jane", ("jane", "doe")),
    ("Zoë Saldaña", ("zoe", "saldana")),
    ("Prince", ("prince", None)),
]


def normalizer_unit_test(source: str, endpoint: str, mapping: CustomerMapping) -> dict[str, Any]:
    """One unit test of `stg_<source>__<endpoint>`: messy raw values in, normalized out."""
    fields = mapping.fields
    cases = {field: field_cases for field, field_cases in FIELD_CASES.items() if field in fields}
    if "date_of_birth" in fields:
        cases["date_of_birth"] = date_cases(fields["date_of_birth"].formats)
    # an id keeps only letters and digits, so its value is predictable whatever joins its
    # parts, unless the separator itself is a letter or digit
    identifier_cases = (
        {kind: IDENTIFIER_CASES for kind in mapping.identifiers}
        if not any(
            char.isalnum()
            for source in mapping.identifiers.values()
            if source.concat
            for char in source.sep
        )
        else {}
    )
    rows = max(
        len(FULL_NAME_CASES), *(len(c) for c in [*cases.values(), *identifier_cases.values()])
    )
    records: list[dict[str, Any]] = [{} for _ in range(rows)]
    expected: list[dict[str, Any]] = [
        {
            "client_id": DEMO_CLIENT_ID,
            "record_key": f"{DEMO_CLIENT_ID}:{source}:{endpoint}:k{i + 1}",
        }
        for i in range(rows)
    ]
    for field, field_cases in cases.items():
        for i in range(rows):
            raw, normalized = field_cases[i] if i < len(field_cases) else (None, None)
            if _place_value(records[i], fields[field], raw):
                expected[i][field] = normalized
    for kind, kind_cases in identifier_cases.items():
        for i in range(rows):
            raw, normalized = kind_cases[i] if i < len(kind_cases) else (None, None)
            _place_value(records[i], mapping.identifiers[kind], raw)
    if identifier_cases:
        # the whole map: every kind's normalized value, kinds without one left out
        for i in range(rows):
            present = {
                kind: kind_cases[i][1]
                for kind, kind_cases in identifier_cases.items()
                if i < len(kind_cases) and kind_cases[i][1] is not None
            }
            expected[i]["identifiers"] = (
                "{" + ", ".join(f"{kind}={value}" for kind, value in sorted(present.items())) + "}"
            )
    if "full_name" in fields:
        for i in range(rows):
            raw_full, (first, last) = (
                FULL_NAME_CASES[i] if i < len(FULL_NAME_CASES) else (None, (None, None))
            )
            if not _place_value(records[i], fields["full_name"], raw_full):
                continue
            for field, value in (("first_name", first), ("last_name", last)):
                if field not in fields:
                    expected[i][field] = value
    fixture = "\nunion all\n".join(
        f"select cast({_sql_string(json.dumps(record))} as json) as record, "
        f"'{DEMO_CLIENT_ID}' as _client_id, 'k{i + 1}' as _primary_key, "
        "'__all__' as _partition_key, timestamptz '2025-01-01 00:00:00+00' as _fetched_at, "
        "timestamptz '2025-01-01 00:00:00+00' as _loaded_at, 'unit-test' as _run_id"
        for i, record in enumerate(records)
    )
    return {
        "name": f"stg_{source}__{endpoint}_normalizes_identity_fields",
        "description": "The normalizers on this source's mapped fields: email aliases, Gmail "
        "dots and case; phone formats; ZIP+4; accents; 'Last, First' names; "
        "dates of birth in the mapped formats (invalid ones null); composed "
        "fields; identifiers.",
        "model": f"stg_{source}__{endpoint}",
        "given": [{"input": f"source('{source}', '{endpoint}')", "format": "sql", "rows": fixture}],
        "expect": {"rows": expected},
    }


def date_cases(formats: list[str]) -> list[tuple[Any, str | None]]:
    """Dates of birth written in `formats` (ISO without), each with the date it must give;
    an impossible date (31 November) and text that is no date give null."""
    if formats in (["epoch"], ["epoch_ms"]):
        scale = 1 if formats == ["epoch"] else 1000
        return [(-1708387200 * scale, "1915-11-13"), (0, "1970-01-01"), ("unknown", None)]
    if not formats:
        return [("1915-11-11", "1915-11-11"), ("1915-11-31", None), ("unknown", None)]
    # %y reads 00-68 as 20xx: a two-digit year needs a date it reads back as itself
    born = (
        date(1985, 11, 11)
        if any("%y" in f or "%-y" in f for f in formats)
        else (date(1915, 11, 11))
    )
    valid: list[tuple[Any, str | None]] = [(born.strftime(f), born.isoformat()) for f in formats]
    with_day = next((f for f in formats if "%d" in f or "%-d" in f), None)
    invalid = (
        [(born.replace(day=30).strftime(with_day).replace("30", "31", 1), None)] if with_day else []
    )
    return [*valid, *invalid, ("unknown", None)]


def _place_value(record: dict[str, Any], source: FieldSource, raw: Any) -> bool:
    """Put `raw` where `source` reads it: at its path, or split by words over its concat
    paths. False when the normalized value is not predictable from the case (a concat whose
    separator is not a space)."""
    if source.path is not None:
        _place(record, source.path, raw)
        return True
    paths = source.concat or []
    words = str(raw).split(" ", len(paths) - 1) if raw is not None else []
    for index, path in enumerate(paths):
        _place(record, path, words[index] if index < len(words) else None)
    return source.sep == " "


def _place(record: dict[str, Any], path: str, value: str | None) -> None:
    """Set `value` at a dotted JSON path (address.zip), creating the objects on the way."""
    *parents, leaf = path.split(".")
    for key in parents:
        record = record.setdefault(key, {})
    record[leaf] = value


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
