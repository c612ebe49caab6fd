"""What every spec model shares: strict models, `${VAR}` references, JSON paths.

String values may hold `${VAR}` or `${VAR:-default}` references, resolved from the environment
given in the validation context; secret fields must be references, so a secret can only ever
come from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationInfo

# `${VAR}` or `${VAR:-default}`: group 1 is the name, group 2 the default (None when absent).
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _environment(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context or {}
    env = context.get("env")
    if env is None:
        raise ValueError("internal: specs must be validated with an environment in context")
    return env  # type: ignore[no-any-return]


def interpolate(value: str, env: Mapping[str, str], resolved: list[str] | None = None) -> str:
    """Replace each `${VAR}` / `${VAR:-default}`; a missing variable without default is an error.

    The values taken from `env` are appended to `resolved` when given."""

    def resolve(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            if resolved is not None:
                resolved.append(env[name])
            return env[name]
        if default is not None:
            return default
        raise ValueError(
            f"environment variable {name} is not set: export it before running "
            "(config/sandbox.env holds the sandbox's demo values; real credentials belong in "
            "your environment or the repository's .env)"
        )

    return ENV_REFERENCE.sub(resolve, value)


def _env_str(value: Any, info: ValidationInfo) -> Any:
    return interpolate(value, _environment(info)) if isinstance(value, str) else value


# Where the resolution of one spec collects the values that `MaskedEnvStr` fields took from the
# environment (in the validation context, which pydantic hands to every nested validator).
MASKED_VALUES = "masked_values"


def _masked_env_str(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    context = info.context or {}
    return interpolate(value, _environment(info), context.setdefault(MASKED_VALUES, []))


def _secret_ref(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str) or not ENV_REFERENCE.fullmatch(value.strip()):
        raise ValueError(
            "secrets must come from the environment: write a reference such as "
            "${MY_API_SECRET}, never the secret itself"
        )
    return interpolate(value.strip(), _environment(info))


EnvStr = Annotated[str, BeforeValidator(_env_str)]
# A value that may carry a credential though the spec does not call it a secret: a `${VAR}` in
# an endpoint's path, query or headers, a source's headers, custom auth options. What the
# environment puts there is masked in logs and messages like a secret
# (`SourceSpec.masked_values`); base_url and token_url stay readable, as they say where.
MaskedEnvStr = Annotated[str, BeforeValidator(_masked_env_str)]
SecretRef = Annotated[SecretStr, BeforeValidator(_secret_ref)]
JsonPath = Annotated[str, Field(pattern=r"^$|^[A-Za-z0-9_\-\[\]*]+(\.[A-Za-z0-9_\-\[\]*]+)*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
