"""Loads one landed attempt into `raw.<source>__<endpoint>` in a single transaction.

DuckDB reads the gzipped pages itself (`read_json_objects`), unnests the records at the
endpoint's path and joins the manifest for lineage; Python never touches rows one by one.
Each record's JSON is parsed as few times as possible (it dominates the cost): the schema is
observed per distinct shape of record, and the contract checks read every field in one call.
`replace` deletes the partition's rows and inserts the new ones; `merge` (incremental runs)
replaces only the rows whose primary keys arrived again. Every load checks that what it read,
wrote and set aside adds up to what was extracted, or writes nothing. Records whose primary
key cannot be a key (`primary_key_sql` says which can) go to `raw._dead_letters` with the
reason, the page and the run; records that break the schema contract hold the load (pulls:
the partition keeps its rows) or go there too (pushes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa

from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.extraction.windows import UNPARTITIONED
from integration_platform.landing import contracts
from integration_platform.landing.contracts import Contract, DriftReport, Observed, ObservedField
from integration_platform.landing.zone import Attempt, PageEntry
from integration_platform.logs import get_logger
from integration_platform.specs.models import RelayPagination, SinglePage, SourceSpec

_log = get_logger("integration_platform.loader")

LoadMode = Literal["replace", "merge"]
DriftPolicy = Literal["hold", "dead_letter", "accept"]
# A load holds DuckDB to this much memory and spills the rest of the staged partition to the
# database's temp directory, so peak memory stays flat however large the partition (1M records
# in 128 MB: benchmarks/README.md, raw load). Raise it for speed, where memory allows.
DEFAULT_LOAD_MEMORY_MB = 128
# DuckDB's JSON reader gives each thread a buffer of twice `maximum_object_size`, which cannot
# be set below its 16 MB default, and reads ahead: about 64 MB per reading thread, measured
# (2 threads fail in 128 MB, 1 thread reads in 64 MB). Staging reads with one thread per this
# many MB of the load's memory, so the reader never runs out.
_READER_MB_PER_THREAD = 128
_DEFAULT_MAX_OBJECT_BYTES = 16 * 1024 * 1024
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


@dataclass(frozen=True)
class RecordsLocator:
    """How DuckDB finds the records in one landed page, the way the extractor found them.

    `part` is SQL over the page (`json`) taking the part that holds the records, in one
    parse; `records` is SQL over `json` and `part` giving the page's records as a list (it
    may look at the page again, but only for pages where `part` alone cannot tell). They must
    agree with the paginator's `records()`: every load compares the two counts.
    """

    part: str
    records: str = "part"


def records_locator(spec: SourceSpec, endpoint: str) -> RecordsLocator:
    config = spec.endpoints[endpoint]
    keys = ["data"] if spec.kind == "graphql" else []
    if isinstance(config.pagination, RelayPagination):
        connection = [*keys, *config.pagination.connection_path.split(".")]
        # edges[].node, or `nodes` when the connection has no edges (the paginator's rule)
        both = (
            f"[{_sql_string(_path([*connection, 'edges']))}, "
            f"{_sql_string(_path([*connection, 'nodes']))}]"
        )
        return RecordsLocator(
            part=f"json_extract(json, {both})",
            records="CASE WHEN part[1] IS NOT NULL THEN json_extract(part[1], '$[*].\"node\"') "
            "ELSE json_extract(part[2], '$[*]') END",
        )
    keys += [k for k in config.records.split(".") if k]
    listed = RecordsLocator(part=f"json_extract(json, {_sql_string(_path([*keys, '[*]']))})")
    if not isinstance(config.pagination, SinglePage):
        return listed  # the extractor lands a page only when its path holds a list
    # One request: the list at the path, or a single object there, which is one record.
    at = _sql_string(_path(keys))
    return RecordsLocator(
        part=listed.part,
        records=f"CASE WHEN len(part) > 0 THEN part WHEN json_type(json, {at}) = 'OBJECT' "
        f"THEN [json_extract(json, {at})] ELSE part END",
    )


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
    with _settings(connection, memory_limit=f"{memory_limit_mb}MB"):
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
                reading_threads=max(1, memory_limit_mb // _READER_MB_PER_THREAD),
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


@contextmanager
def _settings(connection: duckdb.DuckDBPyConnection, **values: object) -> Iterator[None]:
    """DuckDB settings for a while, then the values they had before."""
    before = {
        name: connection.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]
        for name in values
    }
    for name, value in values.items():
        connection.execute(f"SET {name} = {_sql_string(str(value))}")
    try:
        yield
    finally:
        for name, value in before.items():
            connection.execute(f"SET {name} = {_sql_string(str(value))}")


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
        with _settings(connection, threads=threads):
            _stage(
                connection,
                spec,
                endpoint,
                attempt,
                memory_limit_mb=memory_limit_mb,
                threads=threads,
            )
        observed = _observe(connection)
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


def _stage(
    connection: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    endpoint: str,
    attempt: Attempt,
    entries: Sequence[PageEntry] | None = None,
    *,
    append: bool = False,
    memory_limit_mb: int,
    threads: int,
) -> None:
    """`_manifest` (one row per page) and `_staged` (one row per record, with its key), made
    from `entries` (all the attempt's pages by default), or added to with `append`.

    A page is parsed whole: one larger than `memory_limit_mb` allows for is read with the
    memory it needs (`_page_memory_mb`), and the limit comes back after.
    """
    entries = attempt.entries() if entries is None else entries
    needed = _page_memory_mb(max((e.bytes for e in entries), default=0), threads)
    if needed > memory_limit_mb:
        _log.info(
            "large_pages",
            source=spec.source,
            endpoint=endpoint,
            largest_page_bytes=max(e.bytes for e in entries),
            memory_limit_mb=needed,
        )
        with _settings(connection, memory_limit=f"{needed}MB"):
            _stage_entries(connection, spec, endpoint, attempt, entries, append=append)
    else:
        _stage_entries(connection, spec, endpoint, attempt, entries, append=append)


def _page_memory_mb(largest_page: int, threads: int) -> int:
    """Memory DuckDB needs to parse pages of up to `largest_page` bytes on `threads` threads.

    Measured on DuckDB 2.0 (json_extract of a page's records, unnested and hashed, one
    thread): 8 MB pages need 192 MB, 20 MB 384 MB, 40 MB 768 MB; about 19x the page, the
    parse tree and the read buffer (2x maximum_object_size) included. This keeps ~15% above.
    """
    page_mb = -(-largest_page // (1024 * 1024))
    return 64 + 20 * page_mb * max(1, threads)


def _stage_entries(
    connection: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    endpoint: str,
    attempt: Attempt,
    entries: Sequence[PageEntry],
    *,
    append: bool,
) -> None:
    chunk = pa.table(
        {
            "_file": pa.array([e.file for e in entries], pa.string()),
            "_page": pa.array([e.page for e in entries], pa.int32()),
            "_request_url": pa.array([e.url for e in entries], pa.string()),
            "_fetched_at": pa.array(
                [datetime.fromisoformat(e.fetched_at) for e in entries],
                pa.timestamp("us", tz="UTC"),
            ),
            "_records": pa.array([e.records for e in entries], pa.int64()),
        }
    )
    locator = records_locator(spec, endpoint)
    if entries:
        files = ", ".join(_sql_string(str(attempt.folder / e.file)) for e in entries)
        # `unstructured`: each file is one JSON document, whatever its top level. (`auto`
        # reads a top-level array as one document per element, which hides a bare-array
        # body's records from the records path.)
        largest = max(e.bytes for e in entries)
        pages = (
            f"SELECT _file, {locator.records} AS records "
            f"FROM (SELECT regexp_extract(filename, '[^/]+$') AS _file, json, "
            f"{locator.part} AS part "
            f"FROM read_json_objects([{files}], format = 'unstructured', filename = true, "
            f"compression = 'gzip', maximum_object_size = {_object_size(largest)}))"
        )
    else:
        pages = "SELECT NULL::VARCHAR AS _file, NULL::JSON[] AS records WHERE false"
    # One pass over the files, each page parsed once; no table of whole pages is kept. The
    # key (and what is wrong with it) and the record's hash are computed here, where a Stager
    # works beside the extraction; the key's fields are read in one parse of the record.
    key = primary_key_sql(spec.endpoints[endpoint].primary_keys)
    staged = f"""
        SELECT _page, _page_index, record, if(_pk_problem IS NULL, _pk, NULL) AS _pk,
               _pk_problem, _record_hash
        FROM (SELECT *, {key.text} AS _pk, {key.problem} AS _pk_problem
              FROM (SELECT *, [json_type(p) for p in _key_parts] AS _key_kinds,
                           [p ->> '$' for p in _key_parts] AS _key_texts
                    FROM (SELECT m._page, r._page_index, r.record,
                                 md5(r.record::VARCHAR) AS _record_hash,
                                 {key.parts} AS _key_parts
                          FROM (SELECT _file, unnest(records) AS record,
                                       generate_subscripts(records, 1) AS _page_index
                                FROM ({pages})) AS r
                          JOIN _manifest_chunk AS m USING (_file))))
    """
    connection.register("_manifest_chunk", chunk)
    try:
        if append:
            connection.execute("INSERT INTO _manifest SELECT * FROM _manifest_chunk")
            connection.execute(f"INSERT INTO _staged {staged}")
        else:
            connection.execute(
                "CREATE OR REPLACE TEMP TABLE _manifest AS SELECT * FROM _manifest_chunk"
            )
            connection.execute(f"CREATE OR REPLACE TEMP TABLE _staged AS {staged}")
    finally:
        connection.unregister("_manifest_chunk")


def _object_size(largest_page: int) -> int:
    """`maximum_object_size` for pages of up to this many bytes: DuckDB's 16 MB default, or
    the next power of two above the largest page (its reader refuses a larger document)."""
    size = _DEFAULT_MAX_OBJECT_BYTES
    while size <= largest_page:
        size *= 2
    return size


@dataclass(frozen=True)
class PrimaryKeySQL:
    r"""SQL for a record's primary key, by the rule the README's raw-layer section states.

    Each part must be a JSON string or a JSON integer. Its text is the string exactly as sent
    (case and spaces kept) or the integer's digits, so `1` and `"1"` are one key while `"01"`
    and `"1.0"` are others. A number with a fraction or an exponent is refused (one number has
    many spellings, `1.0`, `1e0`, `1.00`, and a double cannot hold every large id exactly), and
    so are booleans, objects, lists, null, a missing field, an empty or blank string and a
    string holding a control character (NUL included). A composite key is its parts joined by
    `|`, each part's own `\` and `|` escaped with a `\`, so `("a|b", "c")` and `("a", "b|c")`
    stay two keys.
    """

    parts: str
    """The key's fields as a list of JSON values, over `record` (one parse of the record)."""
    text: str
    """The key's text, over `_key_kinds` and `_key_texts` (each part's JSON type and text)."""
    problem: str
    """What is wrong with the key, naming the field; NULL when nothing. Over the same."""


_CONTROL = r"'\p{Cc}'"  # RE2: C0 and C1 control characters, NUL and DEL included
_BLANK = r"'[\s\p{Z}]*'"
_NOT_A_KEY = "; a key must be a string or an integer"


def primary_key_sql(primary_keys: Sequence[str]) -> PrimaryKeySQL:
    # JSON pointers (RFC 6901) address any field name exactly, dots and quotes included.
    pointers = ", ".join(
        _sql_string("/" + k.replace("~", "~0").replace("/", "~1")) for k in primary_keys
    )
    texts = [f"_key_texts[{i}]" for i in range(1, len(primary_keys) + 1)]
    problems = [
        _key_part_problem(name, f"_key_kinds[{i}]", text)
        for i, (name, text) in enumerate(zip(primary_keys, texts, strict=True), start=1)
    ]
    if len(primary_keys) > 1:
        texts = [rf"replace(replace({t}, '\', '\\'), '|', '\|')" for t in texts]
    return PrimaryKeySQL(
        parts=f"json_extract(record, [{pointers}])",
        text=" || '|' || ".join(texts),
        problem=f"nullif(concat_ws('; ', {', '.join(problems)}), '')",
    )


def _key_part_problem(name: str, kind: str, text: str) -> str:
    def says(what: str) -> str:
        return _sql_string(f"primary key {name!r} {what}")

    # DuckDB reads an integer beyond 64 bits as a DOUBLE but keeps its digits: an integer
    # still. A real double always prints with a '.' or an exponent.
    return f"""CASE
        WHEN {kind} IS NULL THEN {says("is missing")}
        WHEN {kind} IN ('BIGINT', 'UBIGINT', 'HUGEINT') THEN NULL
        WHEN {kind} = 'DOUBLE' AND regexp_full_match({text}, '-?[0-9]+') THEN NULL
        WHEN {kind} = 'VARCHAR' THEN CASE
            WHEN {text} = '' THEN {says("is an empty string")}
            WHEN regexp_matches({text}, {_CONTROL}) THEN {says("holds the control character ")}
                || printf('U+%04X', unicode(regexp_extract({text}, {_CONTROL})))
            WHEN regexp_full_match({text}, {_BLANK}) THEN {says("is blank (only spaces)")}
            END
        WHEN {kind} = 'NULL' THEN {says("is null")}
        WHEN {kind} = 'DOUBLE' THEN {says("is the number ")} || {text}
            || {_sql_string(", with a fraction or an exponent" + _NOT_A_KEY)}
        WHEN {kind} = 'BOOLEAN' THEN {says("is the boolean ")} || {text}
            || {_sql_string(_NOT_A_KEY)}
        WHEN {kind} = 'OBJECT' THEN {says("is an object" + _NOT_A_KEY)}
        WHEN {kind} = 'ARRAY' THEN {says("is a list" + _NOT_A_KEY)}
        ELSE {says("is a JSON ")} || lower({kind}) || {_sql_string(_NOT_A_KEY)}
        END"""


# Above this many distinct keys, one call per record for all their types costs more than
# looking each key up separately (wide, sparse records).
_MAX_KEYS_AT_ONCE = 256


def _observe(
    connection: duckdb.DuckDBPyConnection,
    pages: tuple[int, int] | None = None,
) -> Observed:
    """Which keys the object records carry, how often, and their non-null JSON types (of the
    pages numbered first..last when given, else of everything staged).

    Records are grouped by shape (their keys, then the type of each key) so that Python only
    sees one row per distinct shape, whatever the number of records.
    """
    where = "true" if pages is None else f"_page BETWEEN {int(pages[0])} AND {int(pages[1])}"
    key_sets = connection.execute(f"""
        SELECT json_keys(record) AS keys, count(*) FROM _staged
        WHERE {where} AND json_type(record) = 'OBJECT' GROUP BY ALL
    """).fetchall()
    names = sorted({key for keys, _ in key_sets for key in keys})
    if not names or len(names) > _MAX_KEYS_AT_ONCE:
        return _observe_key_by_key(connection, int(sum(n for _, n in key_sets)), where)
    index = {name: position for position, name in enumerate(names)}
    # JSON pointers (RFC 6901) address any key exactly, dots and quotes included.
    pointers = ", ".join(_sql_string("/" + n.replace("~", "~0").replace("/", "~1")) for n in names)
    shapes = connection.execute(f"""
        SELECT json_keys(record) AS keys, json_type(record, [{pointers}]) AS kinds, count(*)
        FROM _staged WHERE {where} AND json_type(record) = 'OBJECT' GROUP BY ALL
    """).fetchall()
    total = 0
    present: dict[str, int] = dict.fromkeys(names, 0)
    kinds_seen: dict[str, set[str]] = {name: set() for name in names}
    for keys, kinds, count in shapes:
        total += count
        for key in keys:
            present[key] += count
            kind = kinds[index[key]]
            if kind is not None and kind != "NULL":
                kinds_seen[key].add(contracts.JSON_TYPES.get(kind, kind.lower()))
    fields = {name: ObservedField(present[name], frozenset(kinds_seen[name])) for name in names}
    return Observed(total, fields)


def _observe_key_by_key(connection: duckdb.DuckDBPyConnection, total: int, where: str) -> Observed:
    rows = connection.execute(f"""
        SELECT key, count(*) AS present,
               list(DISTINCT json_type(record -> key))
                   FILTER (WHERE json_type(record -> key) <> 'NULL') AS types
        FROM (SELECT record, unnest(json_keys(record)) AS key FROM _staged
              WHERE {where} AND json_type(record) = 'OBJECT')
        GROUP BY key
    """).fetchall()
    fields = {
        key: ObservedField(
            int(present), frozenset(contracts.JSON_TYPES.get(t, t.lower()) for t in (types or []))
        )
        for key, present, types in rows
    }
    return Observed(total, fields)


def merge_observed(first: Observed, second: Observed) -> Observed:
    """What two batches of records carry together."""
    fields = dict(first.fields)
    for name, seen in second.fields.items():
        earlier = fields.get(name)
        fields[name] = (
            seen
            if earlier is None
            else ObservedField(earlier.present + seen.present, earlier.types | seen.types)
        )
    return Observed(first.records + second.records, fields)


def _mark_violations(connection: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    checks = [
        "CASE WHEN json_type(record) <> 'OBJECT' THEN 'record is not a JSON object' END",
        "_pk_problem",  # found while staging (`primary_key_sql`)
    ]
    # The type of every contract field in one call (one parse of the record): NULL when the
    # field is absent, 'NULL' when it is null.
    paths = ", ".join(_sql_string(f'$."{name}"') for name in contract)
    kinds = f"json_type(record, [{paths}])" if contract else "[]::VARCHAR[]"
    for position, (name, rule) in enumerate(contract.items(), start=1):
        kind = f"_kinds[{position}]"
        if rule.required:
            checks.append(
                f"CASE WHEN {kind} IS NULL THEN "
                f"{_sql_string(f'required field {name!r} is missing')} END"
            )
        allowed = sorted({d for t in rule.types for d in _DUCKDB_NAMES.get(t, [])} | {"NULL"})
        allowed_sql = ", ".join(_sql_string(a) for a in allowed)
        expected = "/".join(sorted(rule.types))
        checks.append(
            f"CASE WHEN {kind} NOT IN ({allowed_sql}) THEN {_sql_string(f'field {name!r} is ')}"
            f" || lower({kind}) || {_sql_string(f', contract says {expected}')} END"
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


class Stager:
    """Stages an attempt's pages in a DuckDB instance of its own while they are still landing.

    Extraction keeps one core busy in Python; DuckDB reads the landed pages on another (it
    releases the GIL), so when the last page lands most of the partition is already staged
    and its schema observed, and `load()` has only the contract check and the transaction
    left. `load()` attaches the warehouse to this instance for that and detaches it after; a
    staging failure is not an error, the load then stages everything itself. Staging holds
    the same `memory_limit_mb` as a load and spills beyond it. Close it when done.
    """

    def __init__(
        self,
        spec: SourceSpec,
        endpoint: str,
        attempt: Attempt,
        *,
        temp_directory: Path,
        memory_limit_mb: int = DEFAULT_LOAD_MEMORY_MB,
        chunk_pages: int = 100,
        poll_seconds: float = 0.05,
    ) -> None:
        self.spec, self.endpoint, self.attempt = spec, endpoint, attempt
        self.memory_limit_mb = memory_limit_mb
        self._chunk_pages, self._poll_seconds = chunk_pages, poll_seconds
        self._threads = max(1, memory_limit_mb // _READER_MB_PER_THREAD)
        self.connection = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": f"{memory_limit_mb}MB",
                "threads": self._threads,
                "temp_directory": str(temp_directory),
            },
        )
        self._staged_entries = 0
        self._manifest_offset = 0  # bytes of the manifest already staged
        self._waiting: list[PageEntry] = []  # landed, not staged yet
        self._observed = Observed(0, {})
        self._error: BaseException | None = None
        self._landing = threading.Event()  # set: the extraction has finished landing
        self._thread = threading.Thread(target=self._follow, name="stager", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            while not self._landing.wait(self._poll_seconds):
                self._stage_new(minimum=self._chunk_pages)
        except BaseException as exc:  # handed to load(), which stages from scratch instead
            self._error = exc

    def _stage_new(self, minimum: int) -> None:
        # Only the manifest's new lines are read: this runs every poll, beside the extraction.
        new, self._manifest_offset = self.attempt.entries_after(self._manifest_offset)
        self._waiting += new
        entries = self._waiting
        # Wait for a whole chunk; at the end stage what is left (the tables, even if empty).
        if len(entries) < minimum or (not entries and self._staged_entries > 0):
            return
        self._waiting = []
        _stage(
            self.connection,
            self.spec,
            self.endpoint,
            self.attempt,
            entries,
            append=self._staged_entries > 0,
            memory_limit_mb=self.memory_limit_mb,
            threads=self._threads,
        )
        if entries:
            self._observed = merge_observed(
                self._observed, _observe(self.connection, (entries[0].page, entries[-1].page))
            )
        self._staged_entries += len(entries)

    @property
    def staged_pages(self) -> int:
        return self._staged_entries

    def finish(self) -> Observed | None:
        """Stage what is left once landing has finished; None when staging failed."""
        self._landing.set()
        self._thread.join()
        if self._error is None:
            try:
                self._stage_new(minimum=0)
            except duckdb.Error as exc:
                self._error = exc
        if self._error is not None:
            _log.warning(
                "staging_failed",
                source=self.spec.source,
                endpoint=self.endpoint,
                error=str(self._error)[:500],
            )
            return None
        return self._observed

    def load(
        self,
        warehouse: Path,
        *,
        partition: str | None,
        run_id: str,
        client_id: str = DEMO_CLIENT_ID,
        mode: LoadMode = "replace",
        on_breaking_drift: DriftPolicy = "hold",
    ) -> LoadResult:
        """`load_attempt` into the warehouse file from what was staged; call under its lock."""
        observed = self.finish()
        connection = self.connection
        connection.execute(f"ATTACH {_sql_string(str(warehouse))} AS warehouse")
        try:
            connection.execute("USE warehouse")
            connection.execute("RESET threads")  # staging is done: every core again
            return load_attempt(
                connection,
                spec=self.spec,
                endpoint=self.endpoint,
                attempt=self.attempt,
                partition=partition,
                run_id=run_id,
                client_id=client_id,
                mode=mode,
                memory_limit_mb=self.memory_limit_mb,
                staged=observed,
                on_breaking_drift=on_breaking_drift,
            )
        finally:
            connection.execute("USE memory")
            connection.execute("DETACH warehouse")

    def close(self) -> None:
        self._landing.set()
        self._thread.join()
        self.connection.close()

    def __enter__(self) -> Stager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
