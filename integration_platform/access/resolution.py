"""Why entity resolution linked two customer records or did not, and what holds a customer
together, read from the published warehouse (`integration-platform er explain`).

Everything comes from the tables the dbt build wrote: the candidate pairs and the blocking
rules that found them, each compared field's level and weight, the prior, the match weight
and probability (int_customer_pair_scores), and the clusters (int_customer_clusters). Nothing
is scored again here, so what this prints is what the build decided.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from integration_platform.access.published import CATALOG

SCHEMA = f"{CATALOG}.intermediate"
# The fields shown side by side, as int_customer_identities_enriched normalized them.
SHOWN_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "date_of_birth",
    "address_line",
    "postcode",
    "city",
    "country",
    "company",
    "identifiers",
)
# A cluster's pairs that were compared but did not link, closest first, at most this many.
NEAR_MISSES_SHOWN = 10


class ExplainError(Exception):
    """A record that is not in the warehouse, or nothing resolved yet: what to do instead."""


@dataclass(frozen=True)
class Record:
    key: str
    client_id: str
    customer_id: str | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class Pair:
    left_key: str
    right_key: str
    blocking_rules: list[str]
    levels: list[tuple[str, str | None, float]]  # (comparison, level, weight in bits)
    prior_weight: float
    match_weight: float
    match_probability: float

    def reasons(self) -> str:
        return "; ".join(f"{c} {level} ({w:+.1f})" for c, level, w in self.levels if level)


def record(connection: duckdb.DuckDBPyConnection, key: str, client_id: str) -> Record:
    """The record `key` names: a record key (`<client>:<source>:<endpoint>:<id>`),
    `<source>:<endpoint>:<id>` of `client_id`, or a customer_id (its smallest record key)."""
    candidates = [key] if key.count(":") >= 3 else []
    candidates.append(f"{client_id}:{key}")
    columns = ", ".join(f"identities.{field}" for field in SHOWN_FIELDS)
    for candidate in candidates:
        rows = _rows(
            connection,
            f"select identities.record_key, identities.client_id, clusters.customer_id, "  # noqa: S608
            f"{columns} from {SCHEMA}.int_customer_identities_enriched as identities "
            f"left join {SCHEMA}.int_customer_clusters as clusters "
            "on clusters.record_key = identities.record_key "
            "where identities.record_key = ?",
            [candidate],
        )
        if rows:
            row = rows[0]
            return Record(row["record_key"], row["client_id"], row["customer_id"], row)
    customers = _rows(
        connection,
        f"select min(record_key) as record_key from {SCHEMA}.int_customer_clusters "  # noqa: S608
        "where customer_id = ? having count(*) > 0",
        [key],
    )
    if customers:  # a customer id: explain it through its first record
        return record(connection, customers[0]["record_key"], client_id)
    raise ExplainError(
        f"No customer record {key!r} (nor {client_id}:{key}) and no customer of that id in the "
        "warehouse. Give a record key as `source:endpoint:id` (with --client) or "
        "`client:source:endpoint:id`, as marts.dim_customers lists them in record_keys, or a "
        "customer_id. Give "
        "one key to see what holds its customer together, two to see why they link or not."
    )


def pair(connection: duckdb.DuckDBPyConnection, a: str, b: str) -> Pair | None:
    """The scored candidate pair of two record keys (either order); None if not compared."""
    left, right = sorted((a, b))
    rows = _rows(
        connection,
        f"select * from {SCHEMA}.int_customer_pair_scores where left_key = ? and right_key = ?",  # noqa: S608
        [left, right],
    )
    return _pair(rows[0]) if rows else None


def cluster_pairs(connection: duckdb.DuckDBPyConnection, customer_id: str) -> list[Pair]:
    """Every compared pair of the customer's records, the strongest first."""
    rows = _rows(
        connection,
        f"""
        with members as (
            select record_key from {SCHEMA}.int_customer_clusters where customer_id = ?
        )
        select scores.* from {SCHEMA}.int_customer_pair_scores as scores
        where scores.left_key in (select record_key from members)
          and scores.right_key in (select record_key from members)
        order by scores.match_weight desc, scores.left_key, scores.right_key
        """,  # noqa: S608
        [customer_id],
    )
    return [_pair(row) for row in rows]


def members(connection: duckdb.DuckDBPyConnection, customer_id: str) -> list[str]:
    return [
        row["record_key"]
        for row in _rows(
            connection,
            f"select record_key from {SCHEMA}.int_customer_clusters "  # noqa: S608
            "where customer_id = ? order by record_key",
            [customer_id],
        )
    ]


def blocking_rules(connection: duckdb.DuckDBPyConnection, client_id: str) -> list[str]:
    """The blocking rules that found at least one of the client's pairs."""
    rows = _rows(
        connection,
        f"select distinct unnest(blocking_rules) as rule "  # noqa: S608
        f"from {SCHEMA}.int_customer_candidate_pairs where client_id = ? order by rule",
        [client_id],
    )
    return [row["rule"] for row in rows]


def link_path(links: Sequence[Pair], start: str, end: str) -> list[Pair] | None:
    """The fewest links (pairs at or above the threshold) that join `start` to `end`."""
    neighbours: dict[str, list[tuple[str, Pair]]] = {}
    for link in links:
        neighbours.setdefault(link.left_key, []).append((link.right_key, link))
        neighbours.setdefault(link.right_key, []).append((link.left_key, link))
    came_from: dict[str, tuple[str, Pair] | None] = {start: None}
    queue = deque([start])
    while queue:
        key = queue.popleft()
        if key == end:
            path: list[Pair] = []
            step = came_from[key]
            while step is not None:
                previous, link = step
                path.append(link)
                step = came_from[previous]
            return path[::-1]
        for neighbour, link in neighbours.get(key, []):
            if neighbour not in came_from:
                came_from[neighbour] = (key, link)
                queue.append(neighbour)
    return None


def explain_pair(
    connection: duckdb.DuckDBPyConnection, a: Record, b: Record, threshold: float
) -> str:
    """Why two records are one customer or two: blocking, each field's level and weight, the
    probability, and the links between them."""
    lines = [f"{a.key}  vs  {b.key}", ""]
    if a.client_id != b.client_id:
        lines.append(
            f"Never compared: the records are two clients' ({a.client_id}, {b.client_id}), "
            "and entity resolution compares only one client's records with each other."
        )
        return "\n".join(lines)
    lines += _side_by_side(a, b)
    lines.append("")
    scored = pair(connection, a.key, b.key)
    if scored is None:
        rules = ", ".join(blocking_rules(connection, a.client_id)) or "none found any pair"
        lines.append(
            "Not compared: no blocking rule gave the two records a shared key (the rules "
            f"in use: {rules}), so they were never scored against each other."
        )
    else:
        lines.append(
            f"Compared: blocking rule(s) {', '.join(scored.blocking_rules)} put them together."
        )
        lines += ["", *_weights_table(scored, threshold)]
    lines.append("")
    lines.append(_verdict(connection, a, b, scored, threshold))
    return "\n".join(lines)


def explain_record(connection: duckdb.DuckDBPyConnection, a: Record, threshold: float) -> str:
    """Which customer a record is part of, and the pairs that hold that customer together."""
    if a.customer_id is None:
        return f"{a.key} is in no customer yet: the build after it landed has not run."
    keys = members(connection, a.customer_id)
    pairs = cluster_pairs(connection, a.customer_id)
    links = [p for p in pairs if p.match_probability >= threshold]
    lines = [
        f"{a.key} is one of {len(keys)} record(s) of customer {a.customer_id} "
        f"(client {a.client_id}):",
        *(f"  {key}" for key in keys),
        "",
    ]
    if len(keys) == 1:
        lines.append("No other record links to it (no compared pair reached the threshold).")
    else:
        lines.append(
            f"Held together by {len(links)} link(s), pairs at or above probability "
            f"{threshold} (any chain of links joins records into one customer):"
        )
        lines += [_pair_line(p) for p in links]
    misses = [p for p in pairs if p.match_probability < threshold]
    own = _rows(
        connection,
        f"select * from {SCHEMA}.int_customer_pair_scores "  # noqa: S608
        "where (left_key = ? or right_key = ?) and match_probability < ? "
        "order by match_weight desc limit ?",
        [a.key, a.key, threshold, NEAR_MISSES_SHOWN],
    )
    misses += [q for q in map(_pair, own) if q not in misses]
    if misses:
        misses.sort(key=lambda p: -p.match_weight)
        lines += [
            "",
            f"Compared but below the threshold (closest first, at most {NEAR_MISSES_SHOWN}):",
        ]
        lines += [_pair_line(p) for p in misses[:NEAR_MISSES_SHOWN]]
    return "\n".join(lines)


def _verdict(
    connection: duckdb.DuckDBPyConnection,
    a: Record,
    b: Record,
    scored: Pair | None,
    threshold: float,
) -> str:
    if a.customer_id is None or b.customer_id is None:
        return "Not resolved yet: the build after these records landed has not run."
    if a.customer_id != b.customer_id:
        return f"Two customers: {a.customer_id} and {b.customer_id}."
    if scored is not None and scored.match_probability >= threshold:
        return f"One customer, {a.customer_id}: this pair is a link."
    links = [
        p for p in cluster_pairs(connection, a.customer_id) if p.match_probability >= threshold
    ]
    path = link_path(links, a.key, b.key) or []
    chain = "\n".join(_pair_line(p) for p in path)
    return (
        f"One customer, {a.customer_id}, through {len(path)} link(s) between other records of "
        f"it (this pair itself is not a link):\n{chain}"
    )


def _side_by_side(a: Record, b: Record) -> list[str]:
    width = max(len(a.key), 12)
    lines = [f"{'':16}{a.key:<{width}}  {b.key}"]
    for field in SHOWN_FIELDS:
        left, right = _shown(a.fields.get(field)), _shown(b.fields.get(field))
        if left or right:
            lines.append(f"{field:16}{left:<{width}}  {right}")
    return lines


def _weights_table(scored: Pair, threshold: float) -> list[str]:
    lines = [f"{'field':16}{'level':14}{'weight (bits)':>14}"]
    for comparison, level, weight in scored.levels:
        lines.append(f"{comparison:16}{level or '(missing)':14}{weight:>+14.2f}")
    lines.append(f"{'prior':16}{'':14}{scored.prior_weight:>+14.2f}")
    lines.append(f"{'match weight':16}{'':14}{scored.match_weight:>+14.2f}")
    decision = "a link" if scored.match_probability >= threshold else "not a link"
    lines.append(f"probability {scored.match_probability:.6f} (threshold {threshold}): {decision}")
    return lines


def _pair_line(p: Pair) -> str:
    return f"  {p.left_key} -- {p.right_key}  p={p.match_probability:.4f}  {p.reasons()}"


def _pair(row: dict[str, Any]) -> Pair:
    comparisons = [c.removesuffix("_level") for c in row if c.endswith("_level")]
    return Pair(
        left_key=row["left_key"],
        right_key=row["right_key"],
        blocking_rules=list(row["blocking_rules"] or []),
        levels=[(c, row[f"{c}_level"], float(row[f"{c}_weight"] or 0)) for c in comparisons],
        prior_weight=float(row["prior_weight"]),
        match_weight=float(row["match_weight"]),
        match_probability=float(row["match_probability"]),
    )


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def _rows(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: list[Any]
) -> list[dict[str, Any]]:
    try:
        relation = connection.execute(sql, parameters)
    except duckdb.CatalogException as e:
        raise ExplainError(
            "Entity resolution has not been built in this warehouse yet "
            f"({e}): run a build first (`make demo`, or a sync)."
        ) from e
    names = [d[0] for d in relation.description or []]
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
