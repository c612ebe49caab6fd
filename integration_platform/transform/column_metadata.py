"""Column types and column lineage for the models a dbt build materializes, as dagster-dbt
computes them, with the lineage kept in a file keyed by everything it is computed from: a build
recomputes it only for the models whose compiled SQL or whose parents' columns changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dagster import (
    AssetCheckResult,
    AssetMaterialization,
    AssetObservation,
    Output,
    deserialize_value,
    get_dagster_logger,
    serialize_value,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._utils import pushd
from dagster_dbt.asset_utils import default_metadata_from_dbt_resource_props

if TYPE_CHECKING:
    from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

logger = get_dagster_logger()

DbtEvent = (
    Output[Any] | AssetMaterialization | AssetObservation | AssetCheckResult | AssetCheckEvaluation
)
Columns = dict[str, dict[str, Any]]
# What the lineage is computed with: a new dagster-dbt or sqlglot may compute it differently.
COMPUTED_BY = f"dagster-dbt {version('dagster-dbt')}, sqlglot {version('sqlglot')}, 1"
# DESCRIBE and count(*) queries wait on DuckDB, which releases the GIL; sqlglot holds it, so more
# threads than this only contend (dagster-dbt's default is 4).
METADATA_THREADS = 2
# The nodes dagster-dbt parses compiled SQL for (seeds and tests get no lineage).
LINEAGE_RESOURCE_TYPES = ("model", "snapshot")


class ColumnLineageCache:
    """dagster-dbt's `dagster/column_lineage` per model, keyed by a hash of what it is computed
    from; `save` keeps only the entries the build read or wrote, so the file stays one
    project's size."""

    def __init__(self, path: Path, entries: dict[str, dict[str, str]] | None = None) -> None:
        self.path = path
        self._entries = entries or {}
        self._used: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @classmethod
    def load(cls, path: Path) -> ColumnLineageCache:
        try:
            entries = json.loads(path.read_text())
        except FileNotFoundError:
            entries = {}
        except ValueError as e:  # a torn or hand-edited file: recompute everything
            logger.warning(f"Ignoring the column lineage cache {path} ({e}); recomputing it.")
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self._used[key] = entry
        return {name: deserialize_value(value) for name, value in entry.items()}

    def put(self, key: str, metadata: Mapping[str, Any]) -> None:
        entry = {name: serialize_value(value) for name, value in metadata.items()}
        with self._lock:
            self._entries[key] = self._used[key] = entry

    def save(self) -> None:
        """Write the entries this build used, atomically (a reader never sees half a file)."""
        with self._lock:
            text = json.dumps(self._used, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(self.path)


def lineage_key(
    props: Mapping[str, Any],
    compiled_sql: str,
    columns: Columns,
    parents: Mapping[str, Columns],
    parent_asset_keys: Mapping[str, Sequence[str]],
) -> str:
    """A hash of everything dagster-dbt's lineage of one model reads: its compiled SQL, its
    columns and types, each parent relation's columns and types, the parents' asset keys
    (the lineage names them), the dialect, and the versions that compute it."""
    blob = json.dumps(
        [
            COMPUTED_BY,
            props["unique_id"],
            props["relation_name"],
            compiled_sql,
            [[name, column["data_type"]] for name, column in columns.items()],
            sorted(
                [relation, [[name, column["data_type"]] for name, column in cols.items()]]
                for relation, cols in parents.items()
            ),
            sorted([parent, list(key)] for parent, key in parent_asset_keys.items()),
        ]
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def with_build_metadata(
    invocation: DbtCliInvocation,
    events: Iterator[DbtEvent],
    cache: ColumnLineageCache | None,
    threads: int = METADATA_THREADS,
) -> Iterator[DbtEvent]:
    """`events` (a `dbt build` stream) with the row counts attached, as dagster-dbt's
    `fetch_row_counts()` attaches them, and unless `cache` is None the column types and column
    lineage, as its `fetch_column_metadata()` does, the lineage read from `cache` where nothing
    it depends on changed.

    The events are read to the end first: dbt holds the DuckDB file until it exits (dagster-dbt
    waits the same way). Events that came before a failure are still yielded, then it is raised.
    Not dagster-dbt's own iterator: its thread pool (dagster `imap`) polls without sleeping
    while dbt runs, taking one of this machine's two cores from dbt for the whole build.
    """
    received: list[DbtEvent] = []
    failure: Exception | None = None
    try:
        received.extend(events)
    except Exception as e:  # re-raised below, after the events dbt did emit
        failure = e
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dbt_build_metadata") as pool:
        yield from pool.map(lambda event: _with_metadata(invocation, event, cache), received)
    if cache is not None:
        cache.save()
    if failure is not None:
        raise failure


def _with_metadata(
    invocation: DbtCliInvocation, event: DbtEvent, cache: ColumnLineageCache | None
) -> DbtEvent:
    metadata = dict(dagster_dbt_row_count(invocation, event) or {})
    if cache is not None:
        metadata.update(column_metadata(invocation, event, cache))
    return event.with_metadata({**event.metadata, **metadata}) if metadata else event


def column_metadata(
    invocation: DbtCliInvocation, event: DbtEvent, cache: ColumnLineageCache
) -> dict[str, Any]:
    """dagster/column_schema and dagster/column_lineage for the node of one event, as
    dagster-dbt's `_fetch_column_metadata` computes them (same queries, same warnings on
    failure), with the lineage looked up in `cache` first."""
    adapter = invocation.adapter
    if adapter is None:
        return {}
    manifest = invocation.manifest
    unique_id = event.metadata["unique_id"].text
    props = manifest["nodes"][unique_id]
    where = props["original_file_path"]
    with (
        pushd(str(invocation.project_dir)),
        adapter.connection_named(f"column_metadata_{unique_id}"),
    ):
        try:
            _, columns = _relation_columns(invocation, props)
        except Exception as e:  # dagster-dbt skips the node's metadata the same way
            logger.warning(f"No column metadata for `{where}`: fetching its columns failed: {e}")
            return {}
        schema = dict(default_metadata_from_dbt_resource_props({"columns": columns}))
        try:
            parents = dict(
                _relation_columns(invocation, _node(manifest, parent))
                for parent in manifest["parent_map"].get(unique_id, [])
            )
            lineage = cached_lineage(invocation, props, columns, parents, cache)
        except Exception as e:  # as dagster-dbt: the column types still go out
            logger.warning(f"No column lineage for `{where}`: {e}", exc_info=True)
            lineage = {}
    return {**schema, **lineage}


def cached_lineage(
    invocation: DbtCliInvocation,
    props: Mapping[str, Any],
    columns: Columns,
    parents: dict[str, Columns],
    cache: ColumnLineageCache,
) -> dict[str, Any]:
    if props["resource_type"] not in LINEAGE_RESOURCE_TYPES:  # dagster-dbt returns {} at once
        return dagster_dbt_lineage(invocation, props, columns, parents)
    manifest = invocation.manifest
    compiled = compiled_sql_path(invocation.target_path, props)
    parent_keys = {
        parent: invocation.dagster_dbt_translator.get_asset_spec(
            manifest, parent, invocation.project
        ).key.path
        for parent in props.get("depends_on", {}).get("nodes", [])
    }
    key = lineage_key(
        props,
        compiled.read_text() if compiled.exists() else "",
        columns,
        parents,
        parent_keys,
    )
    lineage = cache.get(key)
    if lineage is None:
        lineage = dagster_dbt_lineage(invocation, props, columns, parents)
        cache.put(key, lineage)
    return lineage


def compiled_sql_path(target_path: Path, props: Mapping[str, Any]) -> Path:
    """Where dbt wrote the node's compiled SQL, which dagster-dbt parses for the lineage."""
    relative = Path(props["original_file_path"].replace("\\", "/"))
    if props["resource_type"] == "snapshot":
        relative = relative / f"{props['name']}.sql"
    return Path(target_path, "compiled", props["package_name"], relative)


def _node(manifest: Mapping[str, Any], unique_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], manifest["nodes"].get(unique_id) or manifest["sources"][unique_id])


# dagster-dbt's internals, in one place. dagster-dbt 0.29.27 computes column metadata only inside
# `DbtEventIterator.fetch_column_metadata()`, which offers no way to reuse a result, and row
# counts only through its polling thread pool; these functions call the pieces it uses (checked
# against dagster-dbt 0.29.27, dagster_dbt/core/dbt_event_iterator.py `_fetch_column_metadata`
# and `_fetch_row_count_metadata`) so the metadata stays exactly dagster-dbt's.
# tests/unit/test_column_metadata.py compares the two.


def _relation_columns(
    invocation: DbtCliInvocation, props: Mapping[str, Any]
) -> tuple[str, Columns]:
    """A relation's name and its columns' types, as the database reports them (cached per build
    by the invocation)."""
    adapter = invocation.adapter
    assert adapter is not None
    relation = invocation._get_columns_from_dbt_resource_props(
        adapter=adapter, dbt_resource_props=dict(props)
    )
    return relation.name, {c.name: {"data_type": c.data_type} for c in relation.columns}


def dagster_dbt_row_count(invocation: DbtCliInvocation, event: DbtEvent) -> dict[str, Any] | None:
    """dagster-dbt's `dagster/row_count` for a table the build materialized (None: a view, a
    test, or the count failed, which it logs)."""
    from dagster_dbt.core.dbt_event_iterator import _fetch_row_count_metadata

    return _fetch_row_count_metadata(invocation, event)


def dagster_dbt_lineage(
    invocation: DbtCliInvocation,
    props: Mapping[str, Any],
    columns: Columns,
    parents: dict[str, Columns],
) -> dict[str, Any]:
    """dagster-dbt's `dagster/column_lineage` for one model, computed afresh with sqlglot."""
    from dagster_dbt.core.dbt_cli_event import (
        EventHistoryMetadata,
        _build_column_lineage_metadata,
    )

    return _build_column_lineage_metadata(
        event_history_metadata=EventHistoryMetadata(columns=columns, parents=parents),
        dbt_resource_props=dict(props),
        manifest=invocation.manifest,
        dagster_dbt_translator=invocation.dagster_dbt_translator,
        target_path=invocation.target_path,
        project=invocation.project,
    )
