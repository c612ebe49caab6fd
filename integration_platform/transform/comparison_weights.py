"""The entity-resolution weights each client's records gave (dbt model
int_customer_comparison_weights) as metadata of that model's materialization: a table of the
estimates and a chart of the levels' match weights beside the seed's, per client.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetMaterialization,
    MetadataValue,
    Output,
    TableColumn,
    TableRecord,
    TableSchema,
    get_dagster_logger,
)
from dagster._utils import pushd

if TYPE_CHECKING:
    from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

WEIGHTS_MODEL = "int_customer_comparison_weights"
# (column, Dagster table type, digits kept): what the UI shows of each estimate
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("client_id", "string", None),
    ("comparison", "string", None),
    ("level", "string", None),
    ("m_probability", "float", 6),
    ("u_probability", "float", 9),
    ("match_weight", "float", 2),
    ("seed_match_weight", "float", 2),
    ("matched_pairs", "float", 1),
    ("sampled_pairs", "int", None),
    ("records", "int", None),
    ("prior_weight", "float", 2),
    ("em_last_change", "float", 9),
)
# {relation}: the model's relation name from dbt's manifest, never user input
WEIGHTS_QUERY = (
    f"select {', '.join(name for name, _, _ in COLUMNS)} from {{relation}} "  # noqa: S608
    "order by records desc, client_id, comparison, match_weight desc"
)
# Dagster keeps metadata in its event log: the table lists this many rows, the chart this many
# clients (the largest), so a platform of many clients does not write megabytes per build.
MAX_TABLE_ROWS = 1000
MAX_CHART_CLIENTS = 10
BAR_CELLS_PER_BIT = 0.5  # one bar cell is two bits of match weight

logger = get_dagster_logger()


def weights_metadata(rows: Sequence[Mapping[str, Any]]) -> dict[str, MetadataValue]:
    """`er_weights` (a table: every client, comparison and level with m, u, its weight and the
    seed's) and `er_weight_chart` (markdown: each client's prior and the levels' weights as
    bars, estimated beside the seed's), from rows of WEIGHTS_QUERY."""
    schema = TableSchema(columns=[TableColumn(name, kind) for name, kind, _ in COLUMNS])
    records = [
        TableRecord({name: _cell(row[name], kind, digits) for name, kind, digits in COLUMNS})
        for row in rows[:MAX_TABLE_ROWS]
    ]
    return {
        "er_weights": MetadataValue.table(records=records, schema=schema),
        "er_weight_chart": MetadataValue.md(weight_chart(rows)),
        "er_weight_clients": MetadataValue.int(len({row["client_id"] for row in rows})),
    }


def weight_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per client (the largest first), its prior and every level's match weight as a
    bar (█ for evidence of one person, ░ of two), with the seed's weight beside it."""
    clients: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        clients.setdefault(str(row["client_id"]), []).append(row)
    sections = []
    for client, levels in list(clients.items())[:MAX_CHART_CLIENTS]:
        first = levels[0]
        lines = [
            f"### {client}: {first['records']:,} records, prior {first['prior_weight']:+.1f} "
            f"bits, last EM change {first['em_last_change']:.1e}",
            "",
            "| field | level | weight (bits) | | seed |",
            "|---|---|---:|---|---:|",
        ]
        for row in levels:
            weight = float(row["match_weight"])
            lines.append(
                f"| {row['comparison']} | {row['level']} | {weight:+.1f} | {_bar(weight)} | "
                f"{float(row['seed_match_weight']):+.1f} |"
            )
        sections.append("\n".join(lines))
    if len(clients) > MAX_CHART_CLIENTS:
        sections.append(f"({len(clients) - MAX_CHART_CLIENTS} smaller clients in `er_weights`)")
    return "\n\n".join(sections) or "No client has customer records yet."


def with_weights_metadata(invocation: DbtCliInvocation, events: Iterator[Any]) -> Iterator[Any]:
    """`events` of a dbt build, the weights model's materialization with weights_metadata."""
    for event in events:
        unique_id = _unique_id(event)
        if unique_id is not None and unique_id.rsplit(".", 1)[-1] == WEIGHTS_MODEL:
            metadata = read_weights_metadata(invocation, unique_id)
            if metadata:
                event = event.with_metadata({**event.metadata, **metadata})
        yield event


def read_weights_metadata(invocation: DbtCliInvocation, unique_id: str) -> dict[str, Any]:
    """weights_metadata of the table the build wrote, read through the build's dbt adapter
    (the process holds the warehouse); {} with a warning when it cannot be read."""
    adapter = invocation.adapter
    if adapter is None:
        return {}
    relation = invocation.manifest["nodes"][unique_id]["relation_name"]
    try:
        with (
            pushd(str(invocation.project_dir)),
            adapter.connection_named("er_weights_metadata"),
        ):
            _, table = adapter.execute(WEIGHTS_QUERY.format(relation=relation), fetch=True)
    except Exception as e:  # the build succeeded; only its chart is missing
        logger.warning(f"No entity-resolution weights metadata: reading {relation} failed: {e}")
        return {}
    names = list(table.column_names)
    return weights_metadata([dict(zip(names, row, strict=True)) for row in table.rows])


def _unique_id(event: Any) -> str | None:
    """The dbt node a materialization is of (dagster-dbt puts it in the metadata)."""
    if not isinstance(event, Output | AssetMaterialization):
        return None
    text = getattr(event.metadata.get("unique_id"), "text", None)
    return text if isinstance(text, str) else None


def _cell(value: Any, kind: str, digits: int | None) -> str | int | float | None:
    """A value as the table's column type (the adapter gives decimals, DuckDB floats)."""
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return round(float(value), digits if digits is not None else 6)
    return str(value)


def _bar(weight: float) -> str:
    cells = max(1, round(abs(weight) * BAR_CELLS_PER_BIT)) if abs(weight) >= 0.05 else 0
    return ("█" if weight > 0 else "░") * cells
