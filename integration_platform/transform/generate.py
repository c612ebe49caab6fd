"""dbt files derived from the source specs, so a source declared only in YAML reaches the marts.

For every spec: a dbt source whose tables are keyed to the raw assets. For every endpoint that
maps `customer`: a staging model `stg_<source>__<endpoint>` calling the
`stage_customer_identity` macro with the mapping, unless a hand-written model of that name
exists. And macros listing those models, which `int_customer_identities` unions, and the
identifier kinds the mappings declare, which entity resolution compares. The files go
to `models/generated/` and `macros/generated/` (not committed) and are rewritten only when
their content changes, so dbt's partial parsing stays warm.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from integration_platform.landing.loader import raw_table_sql
from integration_platform.specs.models import CustomerMapping, FieldSource, SourceSpec
from integration_platform.transform.identity_unit_tests import normalizer_unit_test

GENERATED_MODELS = Path("models") / "generated"
GENERATED_MACROS = Path("macros") / "generated"
HEADER = "# Generated from the source specs (transform/generate.py): do not edit.\n"


def generate(specs: dict[str, SourceSpec], project_dir: Path) -> list[Path]:
    """Write the generated dbt files; return those that changed."""
    files, stale = _planned(specs, project_dir)
    changed = [path for path, text in files.items() if _write_if_changed(path, text)]
    for path in stale:
        path.unlink()
        changed.append(path)
    return changed


def out_of_date(specs: dict[str, SourceSpec], project_dir: Path) -> list[Path]:
    """The generated files that `generate` would write or delete; writes nothing."""
    files, stale = _planned(specs, project_dir)
    return [
        path for path, text in files.items() if not path.exists() or path.read_text() != text
    ] + stale


def _planned(specs: dict[str, SourceSpec], project_dir: Path) -> tuple[dict[Path, str], list[Path]]:
    """Every generated file with its content, and the generated files no spec asks for."""
    models, macros = project_dir / GENERATED_MODELS, project_dir / GENERATED_MACROS
    handwritten = {
        p.stem
        for p in (project_dir / "models").rglob("*.sql")
        if GENERATED_MODELS not in p.relative_to(project_dir).parents
    }
    files: dict[Path, str] = {models / "_sources.yml": _sources_yaml(specs)}
    identity_models: list[str] = []
    identifier_kinds: set[str] = set()
    for source, spec in sorted(specs.items()):
        for endpoint, config in sorted(spec.endpoints.items()):
            mapping = config.entity.customer
            if mapping is None:
                continue
            identifier_kinds.update(mapping.identifiers)
            name = f"stg_{source}__{endpoint}"
            identity_models.append(name)
            if name not in handwritten:
                files[models / f"{name}.sql"] = _identity_model(source, endpoint, mapping)
    files[models / "_generated.yml"] = _models_yaml(identity_models, specs)
    files[models / "marts" / "raw_load_summary.sql"] = _raw_load_summary(specs)
    files[models / "marts" / "raw_load_summary.yml"] = RAW_LOAD_SUMMARY_YAML
    files[macros / "customer_identity_models.sql"] = (
        "{# Generated from the source specs: the staging models holding customer identities. #}\n"
        "{% macro customer_identity_models() %}{{ return("
        + repr(identity_models)
        + ") }}{% endmacro %}\n"
    )
    files[macros / "customer_identifier_kinds.sql"] = (
        "{# Generated from the source specs: the identifier kinds (national_id, ...) that "
        "customer mappings declare. #}\n"
        "{% macro customer_identifier_kinds() %}{{ return("
        + repr(sorted(identifier_kinds))
        + ") }}{% endmacro %}\n"
    )
    files[macros / "create_missing_raw_tables.sql"] = _create_missing_raw_tables(specs)
    stale = [p for p in models.glob("stg_*.sql") if p not in files]
    return files, stale


def _raw_load_summary(specs: dict[str, SourceSpec]) -> str:
    """Rows per raw table and client: it reads every raw asset, so Dagster's automation asks
    it whether any raw asset is loading (automation/marts.py)."""
    parts = [
        f"select '{source}' as source, '{endpoint}' as endpoint, _client_id as client_id,\n"
        f"    count(*) as rows, max(_loaded_at) as last_loaded_at\n"
        f"from {{{{ source('{source}', '{endpoint}') }}}}\ngroup by _client_id"
        for source, spec in sorted(specs.items())
        for endpoint in sorted(spec.endpoints)
    ]
    body = (
        "\nunion all\n".join(parts)
        if parts
        else (
            "select null::varchar as source, null::varchar as endpoint, null::varchar as client_id,"
            " 0::bigint as rows, null::timestamptz as last_loaded_at where false"
        )
    )
    return (
        "-- Generated from the source specs (transform/generate.py): do not edit.\n"
        "{{ config(materialized='table', schema='marts') }}\n" + body + "\n"
    )


RAW_LOAD_SUMMARY_YAML = HEADER + yaml.safe_dump(
    {
        "version": 2,
        "models": [
            {
                "name": "raw_load_summary",
                "description": "Rows per raw table and client, and when they last loaded. It "
                "reads every raw asset: the dbt build's automation waits while any is loading.",
                "columns": [
                    {"name": "source", "description": "The source spec."},
                    {"name": "endpoint", "description": "The endpoint."},
                    {"name": "client_id", "description": "The integration client."},
                    {"name": "rows", "description": "Raw rows (all versions)."},
                    {"name": "last_loaded_at", "description": "The latest `_loaded_at`."},
                ],
            }
        ],
    },
    sort_keys=False,
)


def _create_missing_raw_tables(specs: dict[str, SourceSpec]) -> str:
    """A macro run at the start of every dbt invocation (dbt_project.yml's on-run-start): the
    raw tables of sources that have not loaded yet exist, empty, so a build after one source
    landed reads the others as empty rather than failing."""
    statements = ["CREATE SCHEMA IF NOT EXISTS raw"] + [
        raw_table_sql(source, endpoint)
        for source, spec in sorted(specs.items())
        for endpoint in sorted(spec.endpoints)
    ]
    sql = ";\n".join(statements)
    return (
        "{# Generated from the source specs (transform/generate.py): do not edit. #}\n"
        "{% macro create_missing_raw_tables() %}\n" + sql + "\n{% endmacro %}\n"
    )


def _sources_yaml(specs: dict[str, SourceSpec]) -> str:
    sources = []
    for source, spec in sorted(specs.items()):
        tables = [
            {
                "name": endpoint,
                "identifier": f"{source}__{endpoint}",
                "description": config.description or f"{source} {endpoint}, one row per record.",
                "meta": {"dagster": {"asset_key": ["raw", source, endpoint]}},
                "columns": [
                    {"name": "record", "description": "The record exactly as the API sent it."},
                    {
                        "name": "_client_id",
                        "description": "The integration client whose credentials fetched "
                        "the record; a partition is one client's day.",
                    },
                    {
                        "name": "_primary_key",
                        "description": "The record's primary key (unique within a client).",
                    },
                ],
            }
            for endpoint, config in sorted(spec.endpoints.items())
        ]
        sources.append(
            {
                "name": source,
                "schema": "raw",
                "description": spec.description or f"The {source} API.",
                "tables": tables,
            }
        )
    return HEADER + yaml.safe_dump({"version": 2, "sources": sources}, sort_keys=False)


def _identity_model(source: str, endpoint: str, mapping: CustomerMapping) -> str:
    fields = _jinja_mapping(mapping.fields)
    identifiers = (
        f", identifiers={_jinja_mapping(mapping.identifiers)}" if mapping.identifiers else ""
    )
    return (
        "-- Generated from the source spec's entity mapping: do not edit.\n"
        f"{{{{ stage_customer_identity({source!r}, {endpoint!r}, {fields}"
        f"{identifiers}) }}}}\n"
    )


def _jinja_mapping(sources: dict[str, FieldSource]) -> str:
    """A Jinja dict literal of field -> source, written as in the spec (a plain path stays a
    string; a format or a concatenation stays an object)."""
    pairs = ", ".join(
        f"{name!r}: {_jinja_source(source)}" for name, source in sorted(sources.items())
    )
    return f"{{{pairs}}}"


def _jinja_source(source: FieldSource) -> str:
    if source.path is not None and source.format is None:
        return repr(source.path)
    return repr(source.model_dump(exclude_none=True, exclude_defaults=True))


def _models_yaml(names: list[str], specs: dict[str, SourceSpec]) -> str:
    models, unit_tests = [], []
    for name in names:
        source, endpoint = name.removeprefix("stg_").split("__", 1)
        mapping = specs[source].endpoints[endpoint].entity.customer
        assert mapping is not None  # names holds only endpoints that map customer
        models.append(
            {
                "name": name,
                "description": f"Customer identities of {source}.{endpoint}, normalized for entity "
                "resolution (generated from the spec's entity mapping).",
                "config": {"tags": ["customer_identity"]},
                # one node for the not-null columns (dbt_project/tests/generic/not_null_columns.sql)
                "data_tests": [
                    {
                        "not_null_columns": {
                            "name": f"not_null_{name}",
                            "arguments": {"columns": ["client_id", "record_key"]},
                        }
                    }
                ],
                "columns": [
                    {
                        "name": "client_id",
                        "description": "Raw `_client_id`: the integration "
                        "client the record belongs to.",
                    },
                    {
                        "name": "record_key",
                        "description": "client_id:source:endpoint:primary key "
                        "(unique across clients)",
                        "data_tests": ["unique"],
                    },
                    *(
                        {
                            "name": f,
                            "description": f"From {_described(field_source)} of "
                            f"raw.{source}__{endpoint}.record",
                        }
                        for f, field_source in sorted(mapping.fields.items())
                    ),
                    *(
                        [
                            {
                                "name": "identifiers",
                                "description": "Identifier kind -> normalized value: "
                                + "; ".join(
                                    f"{kind} from {_described(field_source)}"
                                    for kind, field_source in sorted(mapping.identifiers.items())
                                ),
                            }
                        ]
                        if mapping.identifiers
                        else []
                    ),
                ],
            }
        )
        unit_tests.append(normalizer_unit_test(source, endpoint, mapping))
    document: dict[str, object] = {"version": 2, "models": models}
    if unit_tests:
        document["unit_tests"] = unit_tests
    return HEADER + yaml.safe_dump(document, sort_keys=False)


def _described(source: FieldSource) -> str:
    text = " + ".join(f"`{path}`" for path in source.paths)
    return text + (f" (format {', '.join(source.formats)})" if source.formats else "")


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True
