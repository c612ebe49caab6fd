"""Where DuckDB finds the records of a landed page: SQL derived from the endpoint's records rule.

The rule (`http.pagination.RecordsRule`) is the one the paginators read records with; here it
becomes SQL, so every load reads the records the extraction counted (and checks it does). A
pushed page (webhooks, streams) is the list of records itself: the rule of a body that is the
list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from integration_platform.http.pagination import RecordsRule, records_rule
from integration_platform.landing.loader.sql import sql_string
from integration_platform.landing.provenance import Provenance
from integration_platform.specs.models import SourceSpec

# What a pushed page holds: the records, as a list at its top.
PUSHED_RECORDS = RecordsRule("", "list")


@dataclass(frozen=True)
class RecordsLocator:
    """How DuckDB finds the records in one landed page, the way the extractor found them.

    `part` is SQL over the page (`json`) taking the part that holds the records, in one
    parse; `records` is SQL over `json` and `part` giving the page's records as a list (it
    may look at the page again, but only for pages where `part` alone cannot tell).
    """

    part: str
    records: str = "part"


def records_locator(spec: SourceSpec, endpoint: str, provenance: Provenance) -> RecordsLocator:
    """The SQL for the records of a page of this endpoint that `provenance` produced."""
    if not provenance.holds_response:
        return rule_sql(PUSHED_RECORDS)
    config = spec.endpoints[endpoint]
    # A GraphQL page lands as the whole response; the paginators read its `data`.
    root = ("data",) if spec.kind == "graphql" else ()
    return rule_sql(records_rule(config.pagination, config.records), root)


def rule_sql(rule: RecordsRule, root: Sequence[str] = ()) -> RecordsLocator:
    """The rule as SQL over a page whose body sits at `root` inside the landed document."""
    keys = [*root, *rule.keys]
    if rule.shape == "connection":
        # edges[].node, or `nodes` when the connection has no edges
        edges, nodes = json_path([*keys, "edges"]), json_path([*keys, "nodes"])
        both = f"[{sql_string(edges)}, {sql_string(nodes)}]"
        return RecordsLocator(
            part=f"json_extract(json, {both})",
            records="CASE WHEN part[1] IS NOT NULL THEN json_extract(part[1], '$[*].\"node\"') "
            "ELSE json_extract(part[2], '$[*]') END",
        )
    listed = RecordsLocator(part=f"json_extract(json, {sql_string(json_path(keys) + '[*]')})")
    if rule.shape == "list":
        return listed
    # `list_or_object`: the list at the path, or a single object there, which is one record.
    at = sql_string(json_path(keys))
    return RecordsLocator(
        part=listed.part,
        records=f"CASE WHEN len(part) > 0 THEN part WHEN json_type(json, {at}) = 'OBJECT' "
        f"THEN [json_extract(json, {at})] ELSE part END",
    )


def json_path(keys: Sequence[str | int]) -> str:
    """A DuckDB JSON path: `["data", "items", 0]` -> `$."data"."items"[0]`."""
    out = "$"
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else f'."{key}"'
    return out
