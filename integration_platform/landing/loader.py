"""Loads one landed attempt into `raw.<source>__<endpoint>` in a single transaction.

DuckDB reads the gzipped pages itself (`read_json_objects`), unnests the records at the
endpoint's path and joins the manifest for lineage; Python never touches rows one by one.
`replace` deletes the partition's rows and inserts the new ones; `merge` (incremental runs)
replaces only the rows whose primary keys arrived again. Records that break the schema
contract go to `raw._dead_letters` with the reason, the page and the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa

from integration_platform.landing import contracts
from integration_platform.landing.contracts import Contract, DriftReport, Observed, ObservedField
from integration_platform.landing.zone import UNPARTITIONED, Attempt
from integration_platform.specs.models import RelayPagination, SourceSpec

LoadMode = Literal["replace", "merge"]
_DUCKDB_NAMES: dict[str, list[str]] = {}
for _duck, _kind in contracts.JSON_TYPES.items():
    _DUCKDB_NAMES.setdefault(_kind, []).append(_duck)

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE TABLE IF NOT EXISTS raw._dead_letters (
    source VARCHAR, endpoint VARCHAR, partition_key VARCHAR, run_id VARCHAR,
    page INTEGER, page_file VARCHAR, page_index INTEGER, record JSON, reason VARCHAR,
    recorded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS raw._failed_requests (
    source VARCHAR, endpoint VARCHAR, partition_key VARCHAR, run_id VARCHAR,
    request VARCHAR, error VARCHAR, attempts INTEGER, recorded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS raw._contracts (
    source VARCHAR, endpoint VARCHAR, contract JSON, updated_at TIMESTAMPTZ,
    PRIMARY KEY (source, endpoint));
"""


def table_name(source: str, endpoint: str) -> str:
    return f'raw."{source}__{endpoint}"'


def _table_sql(table: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    record JSON,
    _source VARCHAR, _endpoint VARCHAR, _partition_key VARCHAR, _run_id VARCHAR,
    _fetched_at TIMESTAMPTZ, _request_url VARCHAR, _record_hash VARCHAR,
    _primary_key VARCHAR, _page INTEGER, _page_index INTEGER, _loaded_at TIMESTAMPTZ)"""


def records_json_path(spec: SourceSpec, endpoint: str) -> str:
    """JSONPath to the records inside one landed page."""
    config = spec.endpoints[endpoint]
    if isinstance(config.pagination, RelayPagination):
        return _path(["data", *config.pagination.connection_path.split("."), "edges[*]",
                      "node"])
    keys = ["data"] if spec.kind == "graphql" else []
    keys += [k for k in config.records.split(".") if k]
    return _path([*keys, "[*]"]) if keys else "$[*]"


def _path(keys: list[str]) -> str:
    out = "$"
    for key in keys:
        if key == "[*]":
            out += "[*]"
        elif key.endswith("[*]"):
            out += f'."{key[:-3]}"[*]'
        else:
            out += f'."{key}"'
    return out


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class LoadResult:
    table: str
    rows: int
    dead_letters: int
    rows_replaced: int
    schema_hash: str
    drift: DriftReport
    contract_created: bool
    preview: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def ensure_schema(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(SCHEMA_SQL)


def load_attempt(connection: duckdb.DuckDBPyConnection, *, spec: SourceSpec, endpoint: str,
                 attempt: Attempt, partition: str | None, run_id: str,
                 mode: LoadMode = "replace") -> LoadResult:
    started = time.monotonic()
    config = spec.endpoints[endpoint]
    table = table_name(spec.source, endpoint)
    partition_key = partition or UNPARTITIONED
    ensure_schema(connection)
    connection.execute(_table_sql(table))

    _stage(connection, spec, endpoint, attempt)
    observed = _observe(connection)
    stored = connection.execute(
        "SELECT contract FROM raw._contracts WHERE source = ? AND endpoint = ?",
        [spec.source, endpoint]).fetchall()
    created = not stored
    contract = (contracts.from_json(stored[0][0]) if stored
                else contracts.initial_contract(config.contract, observed))
    report = contracts.compare(contract, observed)
    _mark_violations(connection, contract, config.primary_keys)

    pk = " || '|' || ".join(f"coalesce(record ->> {_sql_string(k)}, '')"
                             for k in config.primary_keys)
    now = datetime.now(UTC)
    connection.execute("BEGIN TRANSACTION")
    try:
        if mode == "replace":
            replaced = connection.execute(
                f"DELETE FROM {table} WHERE _partition_key = ?", [partition_key]).fetchall()
            connection.execute(
                "DELETE FROM raw._dead_letters WHERE source = ? AND endpoint = ? "
                "AND partition_key = ?", [spec.source, endpoint, partition_key])
        else:
            replaced = connection.execute(
                f"DELETE FROM {table} WHERE _partition_key = ? AND _primary_key IN "
                f"(SELECT {pk} FROM _staged WHERE _reason IS NULL)", [partition_key]).fetchall()
        inserted = connection.execute(f"""
            INSERT INTO {table}
            SELECT record, ?, ?, ?, ?, _fetched_at, _request_url, md5(record::VARCHAR),
                   {pk}, _page, _page_index, ?
            FROM _staged WHERE _reason IS NULL
            QUALIFY row_number() OVER (PARTITION BY {pk}
                                       ORDER BY _page DESC, _page_index DESC) = 1
        """, [spec.source, endpoint, partition_key, run_id, now]).fetchall()
        dead = connection.execute("""
            INSERT INTO raw._dead_letters
            SELECT ?, ?, ?, ?, _page, _file, _page_index, record, _reason, ?
            FROM _staged WHERE _reason IS NOT NULL
        """, [spec.source, endpoint, partition_key, run_id, now]).fetchall()
        if observed.records:
            evolved = contracts.evolve(contract, report)
            connection.execute(
                "INSERT OR REPLACE INTO raw._contracts VALUES (?, ?, ?, ?)",
                [spec.source, endpoint, contracts.to_json(evolved), now])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    preview_rows = connection.execute(
        "SELECT record FROM _staged WHERE _reason IS NULL ORDER BY _page, _page_index LIMIT 5"
    ).fetchall()
    connection.execute("DROP TABLE IF EXISTS _staged")
    connection.execute("DROP TABLE IF EXISTS _pages")
    return LoadResult(
        table=table, rows=int(inserted[0][0]), dead_letters=int(dead[0][0]),
        rows_replaced=int(replaced[0][0]), schema_hash=observed.schema_hash(), drift=report,
        contract_created=created and observed.records > 0,
        preview=[orjson.loads(row[0]) for row in preview_rows],
        seconds=round(time.monotonic() - started, 3))


def _stage(connection: duckdb.DuckDBPyConnection, spec: SourceSpec, endpoint: str,
           attempt: Attempt) -> None:
    entries = attempt.entries()
    manifest = pa.table({
        "_file": [e.file for e in entries],
        "_page": pa.array([e.page for e in entries], pa.int32()),
        "_request_url": [e.url for e in entries],
        "_fetched_at": pa.array([datetime.fromisoformat(e.fetched_at) for e in entries],
                                pa.timestamp("us", tz="UTC")),
    })
    connection.register("_manifest", manifest)
    path = _sql_string(records_json_path(spec, endpoint))
    if entries:
        files = ", ".join(_sql_string(str(attempt.folder / e.file)) for e in entries)
        pages = (f"SELECT regexp_extract(filename, '[^/]+$') AS _file, json "
                 f"FROM read_json_objects([{files}], format = 'auto', filename = true, "
                 f"compression = 'gzip')")
    else:
        pages = "SELECT NULL::VARCHAR AS _file, NULL::JSON AS json WHERE false"
    connection.execute(f"CREATE OR REPLACE TEMP TABLE _pages AS {pages}")
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE _staged AS
        SELECT m._file, m._page, r._page_index, r.record, m._request_url, m._fetched_at,
               NULL::VARCHAR AS _reason
        FROM (SELECT _file, unnest(json_extract(json, {path})) AS record,
                     generate_subscripts(json_extract(json, {path}), 1) AS _page_index
              FROM _pages) AS r
        JOIN _manifest AS m USING (_file)
    """)
    connection.unregister("_manifest")


def _observe(connection: duckdb.DuckDBPyConnection) -> Observed:
    total = connection.execute(
        "SELECT count(*) FROM _staged WHERE json_type(record) = 'OBJECT'").fetchall()[0][0]
    rows = connection.execute("""
        SELECT key, count(*) AS present,
               list(DISTINCT json_type(record -> key))
                   FILTER (WHERE json_type(record -> key) <> 'NULL') AS types
        FROM (SELECT record, unnest(json_keys(record)) AS key FROM _staged
              WHERE json_type(record) = 'OBJECT')
        GROUP BY key
    """).fetchall()
    fields = {key: ObservedField(int(present), frozenset(
        contracts.JSON_TYPES.get(t, t.lower()) for t in (types or [])))
        for key, present, types in rows}
    return Observed(int(total), fields)


def _mark_violations(connection: duckdb.DuckDBPyConnection, contract: Contract,
                     primary_keys: list[str]) -> None:
    checks = ["CASE WHEN json_type(record) <> 'OBJECT' THEN 'record is not a JSON object' END"]
    for key in primary_keys:
        checks.append(f"CASE WHEN (record ->> {_sql_string(key)}) IS NULL "
                      f"THEN {_sql_string(f'primary key {key!r} is missing')} END")
    for name, rule in contract.items():
        path = _sql_string(f'$."{name}"')
        if rule.required:
            checks.append(f"CASE WHEN NOT json_exists(record, {path}) THEN "
                          f"{_sql_string(f'required field {name!r} is missing')} END")
        allowed = sorted({d for t in rule.types for d in _DUCKDB_NAMES.get(t, [])} | {"NULL"})
        allowed_sql = ", ".join(_sql_string(a) for a in allowed)
        expected = "/".join(sorted(rule.types))
        checks.append(
            f"CASE WHEN json_exists(record, {path}) AND json_type(record, {path}) "
            f"NOT IN ({allowed_sql}) THEN {_sql_string(f'field {name!r} is ')} || "
            f"lower(json_type(record, {path})) || {_sql_string(f', contract says {expected}')}"
            " END")
    connection.execute(
        f"UPDATE _staged SET _reason = nullif(concat_ws('; ', {', '.join(checks)}), '')")
