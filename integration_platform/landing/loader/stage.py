"""Staging: an attempt's landed pages read by DuckDB into `_manifest` and `_staged`.

One pass over the gzipped pages, each parsed once: the records are unnested where the page's
provenance and the endpoint's records rule say (`locate`), each with its key and hash, and
their schema is observed per distinct shape of record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

from integration_platform.landing import contracts
from integration_platform.landing.contracts import Observed, ObservedField
from integration_platform.landing.loader.keys import primary_key_sql
from integration_platform.landing.loader.locate import RecordsLocator, records_locator
from integration_platform.landing.loader.sql import settings, sql_string
from integration_platform.landing.zone import Attempt, PageEntry
from integration_platform.logs import get_logger
from integration_platform.specs.models import SourceSpec

_log = get_logger("integration_platform.loader")


# A load holds DuckDB to this much memory and spills the rest of the staged partition to the
# database's temp directory, so peak memory stays flat however large the partition (1M records
# in 128 MB: benchmarks/README.md, raw load). Raise it for speed, where memory allows.
DEFAULT_LOAD_MEMORY_MB = 128
# DuckDB's JSON reader gives each thread a buffer of twice `maximum_object_size`, which cannot
# be set below its 16 MB default, and reads ahead: about 64 MB per reading thread, measured
# (2 threads fail in 128 MB, 1 thread reads in 64 MB). Staging reads with one thread per this
# many MB of the load's memory, so the reader never runs out.
READER_MB_PER_THREAD = 128
_DEFAULT_MAX_OBJECT_BYTES = 16 * 1024 * 1024


def stage(
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
        with settings(connection, memory_limit=f"{needed}MB"):
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
    # Pulled responses and pushed lists of records hold their records in different places.
    groups: dict[bool, list[PageEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.provenance.holds_response, []).append(entry)
    pages = " UNION ALL ".join(
        _pages_sql(attempt, group, records_locator(spec, endpoint, group[0].provenance))
        for group in groups.values()
    )
    if not pages:
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
    attempt.register_storage(connection)
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


def _pages_sql(attempt: Attempt, entries: Sequence[PageEntry], locator: RecordsLocator) -> str:
    """(_file, records) of each of these pages, every page read and parsed once."""
    files = ", ".join(sql_string(str(attempt.folder / e.file)) for e in entries)
    # `unstructured`: each file is one JSON document, whatever its top level. (`auto` reads a
    # top-level array as one document per element, which hides a bare-array body's records
    # from the records path.)
    largest = max(e.bytes for e in entries)
    return (
        f"SELECT _file, {locator.records} AS records "
        f"FROM (SELECT regexp_extract(filename, '[^/]+$') AS _file, json, "
        f"{locator.part} AS part "
        f"FROM read_json_objects([{files}], format = 'unstructured', filename = true, "
        f"compression = 'gzip', maximum_object_size = {_object_size(largest)}))"
    )


def _object_size(largest_page: int) -> int:
    """`maximum_object_size` for pages of up to this many bytes: DuckDB's 16 MB default, or
    the next power of two above the largest page (its reader refuses a larger document)."""
    size = _DEFAULT_MAX_OBJECT_BYTES
    while size <= largest_page:
        size *= 2
    return size


# Above this many distinct keys, one call per record for all their types costs more than
# looking each key up separately (wide, sparse records).
_MAX_KEYS_AT_ONCE = 256


def observe(
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
    pointers = ", ".join(sql_string("/" + n.replace("~", "~0").replace("/", "~1")) for n in names)
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
