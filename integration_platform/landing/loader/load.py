"""Loads one landed attempt into `raw.<source>__<endpoint>` in a single transaction.

`stage` reads the pages into `_manifest` and `_staged`; here the schema contract is checked,
and `replace` deletes the partition's rows and inserts the new ones, while `merge` (incremental
runs, pushes) replaces only the rows whose primary keys arrived again. Every load checks that
what it read, wrote and set aside adds up to what was extracted, or writes nothing. Records
whose primary key cannot be a key (`keys.primary_key_sql` says which can) go to
`raw._dead_letters` with the reason, the page and the run; records that break the schema
contract hold the load (pulls: the partition keeps its rows) or go there too (pushes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import orjson

from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.extraction.windows import UNPARTITIONED
from integration_platform.landing import contracts
from integration_platform.landing.contracts import Contract, DriftReport, Observed
from integration_platform.landing.loader.sql import settings, sql_string
from integration_platform.landing.loader.stage import (
    DEFAULT_LOAD_MEMORY_MB,
    READER_MB_PER_THREAD,
    observe,
    stage,
)
from integration_platform.landing.zone import Attempt
from integration_platform.logs import get_logger
from integration_platform.specs.models import SourceSpec

_log = get_logger("integration_platform.loader")

LoadMode = Literal["replace", "merge"]
DriftPolicy = Literal["hold", "dead_letter", "accept"]

_DUCKDB_NAMES: dict[str, list[str]] = {}
for _duck, _kind in contracts.JSON_TYPES.items():
    _DUCKDB_NAMES.setdefault(_kind, []).append(_duck)

SCHEMA_SQL = f"""
CREATE SCHEMA IF NOT EXISTS raw;
CREATE TABLE IF NOT EXISTS raw._dead_letters (
    source VARCHAR, endpoint VARCHAR, partition_key VARCHAR, run_id VARCHAR,
    page INTEGER, page_file VARCHAR, page_index INTEGER, record JSON, reason VARCHAR,
    recorded_at TIMESTAMPTZ, client_id VARCHAR);
CREATE TABLE IF NOT EXISTS raw._failed_requests (
    source VARCHAR, endpoint VARCHAR, partition_key VARCHAR, run_id VARCHAR,
    request VARCHAR, error VARCHAR, attempts INTEGER, recorded_at TIMESTAMPTZ,
    client_id VARCHAR);
CREATE TABLE IF NOT EXISTS raw._contracts (
    source VARCHAR, endpoint VARCHAR, contract JSON, updated_at TIMESTAMPTZ,
    PRIMARY KEY (source, endpoint));
-- Warehouses from before clients: their rows are the demo client's.
ALTER TABLE raw._dead_letters
    ADD COLUMN IF NOT EXISTS client_id VARCHAR DEFAULT '{DEMO_CLIENT_ID}';
ALTER TABLE raw._failed_requests
    ADD COLUMN IF NOT EXISTS client_id VARCHAR DEFAULT '{DEMO_CLIENT_ID}';
"""


def table_name(source: str, endpoint: str) -> str:
    return f'raw."{source}__{endpoint}"'


def raw_table_sql(source: str, endpoint: str) -> str:
    """The DDL of one raw table (also run by dbt at the start of a build: the generated
    `create_missing_raw_tables` macro)."""
    return _table_sql(table_name(source, endpoint))


def _table_sql(table: str) -> str:
    """The raw table; `_client_id` is last so warehouses from before clients gain it in place
    (their rows are the demo client's)."""
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    record JSON,
    _source VARCHAR, _endpoint VARCHAR, _partition_key VARCHAR, _run_id VARCHAR,
    _fetched_at TIMESTAMPTZ, _request_url VARCHAR, _record_hash VARCHAR,
    _primary_key VARCHAR, _page INTEGER, _page_index INTEGER, _loaded_at TIMESTAMPTZ,
    _client_id VARCHAR);
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS _client_id VARCHAR DEFAULT '{DEMO_CLIENT_ID}'"""


class LoadMemoryError(RuntimeError):
    """A load needed more memory than it was given; it rolled back and can simply be re-run."""


class LoadCountError(RuntimeError):
    """The records a load read, wrote and set aside do not add up to what was extracted.

    Raised before COMMIT: nothing was written, the landed pages are kept.
    """


@dataclass
class LoadResult:
    """What one partition's load did. The counts reconcile, or the load raised instead:
    `records_extracted` = `rows` + `dead_letters` + `duplicates` (a key that arrived twice
    keeps its latest record), unless the load was `held`."""

    table: str
    rows: int
    dead_letters: int
    rows_replaced: int
    schema_hash: str
    drift: DriftReport
    contract_created: bool
    preview: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    records_extracted: int = 0
    duplicates: int = 0
    # A breaking drift held the load: nothing was replaced, the partition kept `rows_kept`
    # rows from earlier loads, and the landed pages wait in the attempt folder.
    held: bool = False
    rows_kept: int = 0
    drift_accepted: bool = False  # the breaking drift was taken into the contract


def ensure_schema(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(SCHEMA_SQL)


def load_attempt(
    connection: duckdb.DuckDBPyConnection,
    *,
    spec: SourceSpec,
    endpoint: str,
    attempt: Attempt,
    partition: str | None,
    run_id: str,
    client_id: str = DEMO_CLIENT_ID,
    mode: LoadMode = "replace",
    extra_statements: Sequence[tuple[str, Sequence[object]]] = (),
    memory_limit_mb: int = DEFAULT_LOAD_MEMORY_MB,
    staged: Observed | None = None,
    on_breaking_drift: DriftPolicy = "hold",
) -> LoadResult:
    """Load one attempt's pages into the partition, in one transaction.

    Every load checks its own counts: each page yields as many records as the extraction
    counted on it, and the rows inserted, the dead letters and the superseded duplicates add
    up to them; otherwise it raises `LoadCountError` and writes nothing.

    `on_breaking_drift`, when the records break the schema contract (a required field gone, a
    type changed): `hold` writes nothing and returns a `held` result, so the partition keeps
    its previous rows; `dead_letter` loads the records that fit and dead-letters the rest
    (push sources, whose events cannot wait); `accept` takes the new shape into the stored
    contract (the field becomes optional, the type widens) and loads everything.

    `staged`: the connection already holds the attempt's `_manifest` and `_staged` tables and
    this is what they hold (a `Stager` staged them while the pages landed).

    `extra_statements` (SQL, parameters) run inside that transaction, just before COMMIT: a push
    source records its checkpoint there, so the rows and the checkpoint commit together or not
    at all. DuckDB works within `memory_limit_mb` for the load (the connection's own settings
    come back afterwards).
    """
    with settings(connection, memory_limit=f"{memory_limit_mb}MB"):
        try:
            return _load(
                connection,
                spec=spec,
                endpoint=endpoint,
                attempt=attempt,
                partition=partition,
                run_id=run_id,
                client_id=client_id,
                mode=mode,
                extra_statements=extra_statements,
                memory_limit_mb=memory_limit_mb,
                reading_threads=max(1, memory_limit_mb // READER_MB_PER_THREAD),
                observed=staged,
                on_breaking_drift=on_breaking_drift,
            )
        except duckdb.OutOfMemoryException as exc:
            raise LoadMemoryError(
                f"loading {spec.source}/{endpoint} partition {partition or UNPARTITIONED} ran "
                f"out of its {memory_limit_mb} MB memory limit ({str(exc).splitlines()[0]}). "
                "Nothing was written; the landed pages are kept. Raise the warehouse "
                "resource's load_memory_mb and run it again."
            ) from exc


def _load(
    connection: duckdb.DuckDBPyConnection,
    *,
    spec: SourceSpec,
    endpoint: str,
    attempt: Attempt,
    partition: str | None,
    run_id: str,
    client_id: str,
    mode: LoadMode,
    extra_statements: Sequence[tuple[str, Sequence[object]]],
    memory_limit_mb: int,
    reading_threads: int,
    observed: Observed | None,
    on_breaking_drift: DriftPolicy,
) -> LoadResult:
    started = time.monotonic()
    config = spec.endpoints[endpoint]
    table = table_name(spec.source, endpoint)
    partition_key = partition or UNPARTITIONED
    # A partition is one client's day (or one client's whole unpartitioned set).
    in_partition, this = "_client_id = ? AND _partition_key = ?", [client_id, partition_key]
    where = f"{spec.source}/{endpoint} partition {partition_key} of client {client_id}"
    ensure_schema(connection)
    connection.execute(_table_sql(table))

    if observed is None:
        threads = int(connection.execute("SELECT current_setting('threads')").fetchall()[0][0])
        threads = min(threads, reading_threads)
        with settings(connection, threads=threads):
            stage(
                connection,
                spec,
                endpoint,
                attempt,
                memory_limit_mb=memory_limit_mb,
                threads=threads,
            )
        observed = observe(connection)
    extracted = _check_pages_read_whole(connection, where, attempt)
    stored = connection.execute(
        "SELECT contract FROM raw._contracts WHERE source = ? AND endpoint = ?",
        [spec.source, endpoint],
    ).fetchall()
    created = not stored
    contract = (
        contracts.from_json(stored[0][0])
        if stored
        else contracts.initial_contract(config.contract, observed)
    )
    report = contracts.compare(contract, observed)
    if report.breaking and on_breaking_drift == "accept":
        contract = contracts.accept(contract, report)
    if report.breaking and on_breaking_drift == "hold":
        kept = _count(connection, f"SELECT count(*) FROM {table} WHERE {in_partition}", this)
        _drop_staging(connection)
        _log.warning(
            "partition_held",
            source=spec.source,
            endpoint=endpoint,
            partition=partition_key,
            run_id=run_id,
            records=extracted,
            rows_kept=kept,
            drift=report.summary(),
            attempt=str(attempt.folder),
        )
        return LoadResult(
            table=table,
            rows=0,
            dead_letters=0,
            rows_replaced=0,
            schema_hash=observed.schema_hash(),
            drift=report,
            contract_created=False,
            seconds=round(time.monotonic() - started, 3),
            records_extracted=extracted,
            held=True,
            rows_kept=kept,
        )
    _mark_violations(connection, contract)

    now = datetime.now(UTC)
    count_partition = f"SELECT count(*) FROM {table} WHERE {in_partition}"
    connection.execute("BEGIN TRANSACTION")
    try:
        before = _count(connection, count_partition, this)
        if mode == "replace":
            replaced = connection.execute(
                f"DELETE FROM {table} WHERE {in_partition}", this
            ).fetchall()
            connection.execute(
                "DELETE FROM raw._dead_letters WHERE source = ? AND endpoint = ? "
                "AND client_id = ? AND partition_key = ?",
                [spec.source, endpoint, *this],
            )
        else:
            replaced = connection.execute(
                f"DELETE FROM {table} WHERE {in_partition} AND _primary_key IN "
                f"(SELECT _pk FROM _accepted)",
                this,
            ).fetchall()
        # A key that arrived twice keeps its latest record. The window runs over the narrow
        # (key, position) columns only, so the insert below streams instead of sorting records.
        connection.execute("""
            CREATE OR REPLACE TEMP TABLE _superseded AS
            SELECT _page, _page_index FROM _accepted
            QUALIFY row_number() OVER (PARTITION BY _pk
                                       ORDER BY _page DESC, _page_index DESC) > 1
        """)
        inserted = int(
            connection.execute(
                f"""
            INSERT INTO {table}
            SELECT s.record, ?, ?, ?, ?, m._fetched_at, m._request_url, s._record_hash,
                   s._pk, s._page, s._page_index, ?, ?
            FROM _accepted AS s JOIN _manifest AS m USING (_page)
            ANTI JOIN _superseded AS d USING (_page, _page_index)
        """,
                [spec.source, endpoint, partition_key, run_id, now, client_id],
            ).fetchall()[0][0]
        )
        dead = int(
            connection.execute(
                """
            INSERT INTO raw._dead_letters
            SELECT ?, ?, ?, ?, s._page, m._file, s._page_index, s.record, v._reason, ?, ?
            FROM _staged AS s JOIN _manifest AS m USING (_page)
            JOIN _violations AS v USING (_page, _page_index)
        """,
                [spec.source, endpoint, partition_key, run_id, now, client_id],
            ).fetchall()[0][0]
        )
        duplicates = _count(connection, "SELECT count(*) FROM _superseded")
        removed = int(replaced[0][0])
        _check_counts_add_up(
            where,
            extracted=extracted,
            inserted=inserted,
            dead=dead,
            duplicates=duplicates,
            expected_after=before - removed + inserted,
            after=_count(connection, count_partition, this),
        )
        if observed.records:
            evolved = contracts.evolve(contract, report)
            connection.execute(
                "INSERT OR REPLACE INTO raw._contracts VALUES (?, ?, ?, ?)",
                [spec.source, endpoint, contracts.to_json(evolved), now],
            )
        for sql, parameters in extra_statements:
            connection.execute(sql, parameters)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    preview_rows = connection.execute(
        "SELECT record FROM _accepted ORDER BY _page, _page_index LIMIT 5"
    ).fetchall()
    _drop_staging(connection)
    _log.info(
        "partition_loaded",
        source=spec.source,
        endpoint=endpoint,
        partition=partition_key,
        run_id=run_id,
        table=table,
        records=extracted,
        rows=inserted,
        dead_letters=dead,
        duplicates=duplicates,
        mode=mode,
        drift=report.summary(),
        seconds=round(time.monotonic() - started, 3),
    )
    return LoadResult(
        table=table,
        rows=inserted,
        dead_letters=dead,
        rows_replaced=removed,
        schema_hash=observed.schema_hash(),
        drift=report,
        contract_created=created and observed.records > 0,
        preview=[orjson.loads(row[0]) for row in preview_rows],
        seconds=round(time.monotonic() - started, 3),
        records_extracted=extracted,
        duplicates=duplicates,
        drift_accepted=report.breaking and on_breaking_drift == "accept",
    )


def _count(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: Sequence[object] = ()
) -> int:
    return int(connection.execute(sql, parameters).fetchall()[0][0])


def _drop_staging(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute("DROP VIEW IF EXISTS _accepted")
    for temp in ("_staged", "_manifest", "_superseded", "_violations"):
        connection.execute(f"DROP TABLE IF EXISTS {temp}")


def _check_pages_read_whole(
    connection: duckdb.DuckDBPyConnection, where: str, attempt: Attempt
) -> int:
    """The records the extraction counted, after checking that staging read each page's all."""
    short = connection.execute("""
        SELECT m._page, m._file, m._records, count(s._page) AS read
        FROM _manifest AS m LEFT JOIN _staged AS s USING (_page)
        GROUP BY ALL HAVING read <> m._records ORDER BY m._page
    """).fetchall()
    extracted = _count(connection, "SELECT coalesce(sum(_records), 0) FROM _manifest")
    if short:
        read = _count(connection, "SELECT count(*) FROM _staged")
        pages = "; ".join(
            f"{file}: {counted} extracted, {got} read" for _, file, counted, got in short[:5]
        )
        raise LoadCountError(
            f"{where}: the extraction counted {extracted} records but the loader read {read} "
            f"from the landed pages ({len(short)} page(s) differ: {pages}). Nothing was "
            f"written; the pages are kept in {attempt.folder}. The spec's records path and "
            "the pages' shape disagree: check `records` (and the pagination's paths) against "
            "one of those pages, then run the partition again."
        )
    return extracted


def _check_counts_add_up(
    where: str,
    *,
    extracted: int,
    inserted: int,
    dead: int,
    duplicates: int,
    expected_after: int,
    after: int,
) -> None:
    if inserted + dead + duplicates != extracted:
        raise LoadCountError(
            f"{where}: {extracted} records extracted, but {inserted} rows inserted + {dead} "
            f"dead letters + {duplicates} superseded duplicates = "
            f"{inserted + dead + duplicates}. Nothing was written (rolled back); run the "
            "partition again, and report this if it repeats."
        )
    if after != expected_after:
        raise LoadCountError(
            f"{where}: the partition would hold {after} rows, expected {expected_after} "
            "(its rows before, minus those replaced, plus those inserted): something else "
            "wrote to it during the load. Nothing was written (rolled back); run it again."
        )


def _mark_violations(connection: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    checks = [
        "CASE WHEN json_type(record) <> 'OBJECT' THEN 'record is not a JSON object' END",
        "_pk_problem",  # found while staging (`primary_key_sql`)
    ]
    # The type of every contract field in one call (one parse of the record): NULL when the
    # field is absent, 'NULL' when it is null.
    paths = ", ".join(sql_string(f'$."{name}"') for name in contract)
    kinds = f"json_type(record, [{paths}])" if contract else "[]::VARCHAR[]"
    for position, (name, rule) in enumerate(contract.items(), start=1):
        kind = f"_kinds[{position}]"
        if rule.required:
            checks.append(
                f"CASE WHEN {kind} IS NULL THEN "
                f"{sql_string(f'required field {name!r} is missing')} END"
            )
        allowed = sorted({d for t in rule.types for d in _DUCKDB_NAMES.get(t, [])} | {"NULL"})
        allowed_sql = ", ".join(sql_string(a) for a in allowed)
        expected = "/".join(sorted(rule.types))
        checks.append(
            f"CASE WHEN {kind} NOT IN ({allowed_sql}) THEN {sql_string(f'field {name!r} is ')}"
            f" || lower({kind}) || {sql_string(f', contract says {expected}')} END"
        )
    # Only the few records that break the contract are kept (an UPDATE of every staged row
    # would rewrite the partition, in memory); `_accepted` is everything else. Every record's
    # reason is written first and the empty ones deleted after: DuckDB would push a WHERE into
    # the scan with `_kinds` inlined into each check, parsing each record once per check
    # (measured: twice the time, and out of memory on 300,000 records in 128 MB).
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE _violations AS
        SELECT _page, _page_index, nullif(concat_ws('; ', {", ".join(checks)}), '') AS _reason
        FROM (SELECT _page, _page_index, record, _pk_problem, {kinds} AS _kinds FROM _staged)
    """)
    connection.execute("DELETE FROM _violations WHERE _reason IS NULL")
    connection.execute("""
        CREATE OR REPLACE TEMP VIEW _accepted AS
        SELECT * FROM _staged ANTI JOIN _violations USING (_page, _page_index)
    """)
