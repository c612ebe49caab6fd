"""A record's primary key in SQL, by the one rule the README's raw-layer section states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from integration_platform.landing.loader.sql import sql_string


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
        sql_string("/" + k.replace("~", "~0").replace("/", "~1")) for k in primary_keys
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
        return sql_string(f"primary key {name!r} {what}")

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
            || {sql_string(", with a fraction or an exponent" + _NOT_A_KEY)}
        WHEN {kind} = 'BOOLEAN' THEN {says("is the boolean ")} || {text}
            || {sql_string(_NOT_A_KEY)}
        WHEN {kind} = 'OBJECT' THEN {says("is an object" + _NOT_A_KEY)}
        WHEN {kind} = 'ARRAY' THEN {says("is a list" + _NOT_A_KEY)}
        ELSE {says("is a JSON ")} || lower({kind}) || {sql_string(_NOT_A_KEY)}
        END"""
