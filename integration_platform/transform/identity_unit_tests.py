"""dbt unit tests of the identity normalizers, generated for every customer staging model.

The normalizers (macros/normalize.sql) run inside the generated `stg_<source>__<endpoint>`
models, whose names depend on the specs; so their unit tests are generated too: messy values
(aliased Gmail addresses, phone formats, ZIP+4, accents, "Last, First") are placed at the
spec's JSON paths, and the test expects the normalized columns. A spec change cannot leave a
unit test pointing at a model that no longer exists.
"""

from __future__ import annotations

import json
from typing import Any

# canonical field -> (raw value, expected normalized value) cases, in row order
FIELD_CASES: dict[str, list[tuple[str, str | None]]] = {
    "email": [(" John.Doe+News@GMail.com ", "johndoe@gmail.com"),
              ("Jane.Roe+billing@Example.COM", "jane.roe@example.com"),
              ("not an email", None)],
    "phone": [("+1 (415) 555-0100", "4155550100"),
              ("0044 20 7946 0958", "2079460958"),
              ("555-0100", None)],
    "first_name": [(" José ", "jose"), ("ANNE-MARIE", "anne-marie"), ("Zoë", "zoe")],
    "last_name": [("Müller-Lüdenscheidt", "muller-ludenscheidt"), ("O'Brien", "obrien"),
                  ("Groß", "gross")],
    "postcode": [("94105-1234", "94105"), ("sw1a 1aa", "SW1A1AA"), ("10115", "10115")],
    "address_line": [("12 Main Street", "12 main st"),
                     ("1697 Lothar-Lachmann-Straße", "1697 lothar lachmann str"),
                     ("928 Handestr.", "928 handestr")],
}
# a full name is split when the spec maps no first/last name: raw -> (first, last)
FULL_NAME_CASES: list[tuple[str, tuple[str | None, str | None]]] = [
    ("Doe, Jane", ("jane", "doe")),
    ("Zoë Saldaña", ("zoe", "saldana")),
    ("Prince", ("prince", None)),
]


def normalizer_unit_test(source: str, endpoint: str, mapping: dict[str, str]) -> dict[str, Any]:
    """One unit test of `stg_<source>__<endpoint>`: messy raw values in, normalized out."""
    rows = max(len(FULL_NAME_CASES), *(len(cases) for cases in FIELD_CASES.values()))
    splits_full_name = "full_name" in mapping
    records: list[dict[str, Any]] = [{} for _ in range(rows)]
    expected: list[dict[str, Any]] = [
        {"record_key": f"{source}:{endpoint}:k{i + 1}"} for i in range(rows)]
    for field, cases in FIELD_CASES.items():
        if field not in mapping:
            continue
        for i in range(rows):
            raw, normalized = cases[i] if i < len(cases) else (None, None)
            _place(records[i], mapping[field], raw)
            expected[i][field] = normalized
    if splits_full_name:
        for i in range(rows):
            raw_full, (first, last) = (FULL_NAME_CASES[i] if i < len(FULL_NAME_CASES)
                                       else (None, (None, None)))
            _place(records[i], mapping["full_name"], raw_full)
            for field, value in (("first_name", first), ("last_name", last)):
                if field not in mapping:
                    expected[i][field] = value
    fixture = "\nunion all\n".join(
        f"select cast({_sql_string(json.dumps(record))} as json) as record, 'k{i + 1}' as "
        "_primary_key, timestamptz '2025-01-01 00:00:00+00' as _fetched_at, "
        "'unit-test' as _run_id"
        for i, record in enumerate(records))
    return {
        "name": f"stg_{source}__{endpoint}_normalizes_identity_fields",
        "description": "The normalizers on this source's mapped fields: email aliases, Gmail "
                       "dots and case; phone formats; ZIP+4; accents; 'Last, First' names.",
        "model": f"stg_{source}__{endpoint}",
        "given": [{"input": f"source('{source}', '{endpoint}')", "format": "sql",
                   "rows": fixture}],
        "expect": {"rows": expected},
    }


def _place(record: dict[str, Any], path: str, value: str | None) -> None:
    """Set `value` at a dotted JSON path (address.zip), creating the objects on the way."""
    *parents, leaf = path.split(".")
    for key in parents:
        record = record.setdefault(key, {})
    record[leaf] = value


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
