"""Which variables a client may store per source (those its spec references), and checking a
client's credentials against them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from integration_platform.clients.errors import Problem
from integration_platform.specs.credentials import referenced_variables
from integration_platform.specs.loader import load_specs


@dataclass(frozen=True)
class SourceVariables:
    required: frozenset[str]  # referenced without a default
    optional: frozenset[str]  # `${VAR:-default}`

    @property
    def all(self) -> frozenset[str]:
        return self.required | self.optional


def source_variables() -> dict[str, SourceVariables]:
    """Every spec's variables (cached: specs do not change while a process runs)."""
    return dict(_source_variables())


@cache
def _source_variables() -> tuple[tuple[str, SourceVariables], ...]:
    found = []
    for name, spec in sorted(load_specs().items()):
        assert spec.file is not None
        variables = referenced_variables(spec.file)
        found.append(
            (
                name,
                SourceVariables(
                    required=frozenset(
                        v for v, has_default in variables.items() if not has_default
                    ),
                    optional=frozenset(v for v, has_default in variables.items() if has_default),
                ),
            )
        )
    return tuple(found)


def credential_problems(
    credentials: Mapping[str, Mapping[str, str]], prefix: str = "credentials"
) -> list[Problem]:
    """What is wrong with a complete set of credentials per source (empty: nothing)."""
    known = source_variables()
    problems: list[Problem] = []
    for source, values in credentials.items():
        if source not in known:
            problems.append(
                Problem(
                    f"{prefix}.{source}",
                    f"unknown source; known sources: {', '.join(sorted(known))}",
                )
            )
            continue
        allowed = known[source]
        for name, value in values.items():
            if name not in allowed.all:
                problems.append(
                    Problem(
                        f"{prefix}.{source}.{name}",
                        f"the {source} spec does not reference ${{{name}}}; it uses: "
                        f"{', '.join(sorted(allowed.all))}",
                    )
                )
            elif not value.strip():
                problems.append(
                    Problem(
                        f"{prefix}.{source}.{name}",
                        "empty value; give the value or leave the variable out",
                    )
                )
        problems += [
            Problem(
                f"{prefix}.{source}.{name}",
                f"required: the {source} spec references ${{{name}}} without a default",
            )
            for name in sorted(allowed.required - set(values))
        ]
    return problems
