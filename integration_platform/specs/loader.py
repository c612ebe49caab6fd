"""Finds and loads source spec files, turning every problem into an error naming file and key.

`SOURCES_PATH` (default: `sources/` in the repository) lists the spec files or folders to load,
separated by the OS path separator. With `env=None` references stay unresolved (`${VAR}`), so
definitions load without secrets; whatever talks to a source resolves that source's spec alone
(`load_source`, `resolve_spec`), so it never needs another source's variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from integration_platform import environment
from integration_platform.logs import register_secrets
from integration_platform.specs.models import SourceSpec, query_file_path
from integration_platform.specs.secrets import secret_values

SOURCES_PATH_VARIABLE = "SOURCES_PATH"


class SpecError(ValueError):
    """A source spec that cannot be used, with the file, key path and what was expected."""

    def __init__(self, file: Path, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(
            f"{file}: " + ("\n  " if len(problems) > 1 else "") + "\n  ".join(problems)
        )


class _KeepReferences(dict[str, str]):
    """An environment in which every variable resolves to its own reference."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"${{{key}}}"


def spec_paths(value: str | None = None) -> list[Path]:
    """The spec files named by `SOURCES_PATH` (files or folders of *.yaml / *.yml)."""
    raw = value if value is not None else os.environ.get(SOURCES_PATH_VARIABLE)
    entries = raw.split(os.pathsep) if raw else [str(environment.PROJECT_ROOT / "sources")]
    files: list[Path] = []
    for entry in filter(None, entries):
        path = Path(entry)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files.append(path)
        else:
            raise SpecError(path, [f"no such file or folder (from {SOURCES_PATH_VARIABLE})"])
    return files


def load_spec(file: Path, env: Mapping[str, str] | None = None) -> SourceSpec:
    """Parse and validate one spec file. `env=None` leaves `${VAR}` references as they are."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise SpecError(file, [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"
        raise SpecError(file, [problem + _unquoted_reference_hint(text, mark)]) from exc
    if not isinstance(raw, dict):
        raise SpecError(file, ["expected a mapping at the top (source:, kind:, endpoints:, ...)"])
    context = {"env": _KeepReferences() if env is None else env}
    try:
        spec = SourceSpec.model_validate(raw, context=context)
    except ValidationError as exc:
        raise SpecError(file, [_describe(error) for error in exc.errors()]) from exc
    spec._file = file.resolve()
    _check_query_files(spec, file)
    if env is not None:  # its secrets are real values now: never let a log or message show them
        register_secrets(secret_values(spec))
    return spec


def load_specs(
    files: Iterable[Path] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, SourceSpec]:
    """Every spec, keyed by source name; two files declaring one source is an error."""
    specs: dict[str, SourceSpec] = {}
    for file in spec_paths() if files is None else files:
        spec = load_spec(file, env)
        if spec.source in specs:
            raise SpecError(
                file, [f"source: {spec.source!r} is already declared in {specs[spec.source]._file}"]
            )
        specs[spec.source] = spec
    return specs


def load_source(
    source: str, env: Mapping[str, str], files: Iterable[Path] | None = None
) -> SourceSpec:
    """One source's spec resolved from `env`; the others are parsed but never resolved, so
    their variables need not be set. UnknownSourceError when no spec declares `source`."""
    specs = load_specs(files)
    if source not in specs:
        raise UnknownSourceError(
            f"no source {source!r}; known: {', '.join(sorted(specs)) or 'none'}"
        )
    return resolve_spec(specs[source], env)


def resolve_spec(spec: SourceSpec, env: Mapping[str, str]) -> SourceSpec:
    """The spec again, from its file, with its (and only its) `${VAR}` references resolved."""
    if spec.file is None:
        raise ValueError(
            f"source {spec.source!r} was not loaded from a file, so it cannot be resolved again"
        )
    return load_spec(spec.file, env)


def _unquoted_reference_hint(text: str, mark: Any) -> str:
    """What to do when YAML stopped at the `{` of a `${VAR}` inside `{...}` or `[...]`.

    There a `{` opens a nested mapping, so `{client_id: ${CRM_CLIENT_ID}}` fails with only
    "expected ',' or '}'"; quoted, the reference is a plain string again.
    """
    lines = text.splitlines()
    if mark is None or mark.line >= len(lines):
        return ""
    line = lines[mark.line]
    found = _FLOW_REFERENCE.search(line[: mark.column + 1])
    if found is None or found.end() != mark.column + 1:
        return ""
    reference = re.match(r"\$\{[^}\s,]*\}?", line[found.start("dollar") :])
    key = found.group("key")
    quoted = f'"{reference.group() if reference else "${VAR}"}"'
    return ". A ${...} reference inside {...} or [...] must be quoted, e.g. " + (
        f"{key}: {quoted}" if key else quoted
    )


# The key (if any) and the `${` at which a flow collection stopped parsing.
_FLOW_REFERENCE = re.compile(r"(?:(?P<key>[\w.-]+)\s*:\s*)?(?P<dollar>\$)\{$")


class UnknownSourceError(ValueError):
    """A source name that no loaded spec declares."""


def _check_query_files(spec: SourceSpec, file: Path) -> None:
    problems = []
    for name, endpoint in spec.endpoints.items():
        if not endpoint.query_file:
            continue
        try:
            found = query_file_path(file, endpoint.query_file).is_file()
        except ValueError as exc:
            problems.append(f"endpoints.{name}.query_file: {exc}")
            continue
        if not found:
            problems.append(
                f"endpoints.{name}.query_file: {endpoint.query_file!r} not found "
                f"next to the spec (looked in {file.parent})"
            )
    if problems:
        raise SpecError(file, problems)


def _describe(error: Any) -> str:
    """`endpoints.contacts.pagination.cursor_param: <message>` from a pydantic error."""
    location = [str(part) for part in error["loc"]]
    value = error.get("input")
    path = ".".join(location)
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key (check the spelling; see the docs for allowed keys)"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return (
            f"{path}: unknown type {ctx.get('tag', value)!r}; expected one of "
            f"{ctx.get('expected_tags', '')}"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if not path:  # a check across keys, whose message starts with the key path it is about
        return message
    return f"{path}: {message}" + (f" (got {value!r})" if _shows(value, kind) else "")


def _shows(value: Any, kind: str) -> bool:
    return (
        isinstance(value, str | int | float)
        and not kind.startswith("value_error")
        and (not isinstance(value, str) or "${" not in value)
    )
