"""The Dagster instance in $DAGSTER_HOME, set up as `make run`, materialize and the demo need,
from the instance profile `INTEGRATION_PLATFORM_PROFILE` names (local, or production)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from dagster import DagsterInstance

from integration_platform import environment
from integration_platform.assets.partitions import register_clients
from integration_platform.client_ids import DEMO_CLIENT_ID

# The slots of the pool of the runs that write the warehouse (the dbt build's `WAREHOUSE_POOL`):
# DuckDB has one writer. Pools' limits live in the instance's storage; dagster.yaml sets the
# default for every other pool.
WAREHOUSE_POOL_SLOTS = 1

PROFILE_VARIABLE = "INTEGRATION_PLATFORM_PROFILE"
LOCAL, PRODUCTION = "local", "production"
# Each profile's dagster.yaml. Local (the default, `make run`): SQLite under $DAGSTER_HOME, one
# machine. Production: PostgreSQL, tag concurrency limits, run monitoring.
PROFILE_FILES = {
    LOCAL: environment.PROJECT_ROOT / "dagster.yaml",
    PRODUCTION: environment.PROJECT_ROOT / "config" / "dagster.production.yaml",
}

POSTGRES_URL_VARIABLE = "DAGSTER_POSTGRES_URL"
# dagster-postgres speaks psycopg2; SQLAlchemy 2.1 (the client store's) gives a plain
# postgresql:// URL to psycopg 3, on which Dagster's event log fails at its first write.
POSTGRES_URL_SCHEME = "postgresql+psycopg2://"
# What a variable a profile reads holds, for the error that asks for it.
_EXAMPLES = {
    POSTGRES_URL_VARIABLE: f" (a {POSTGRES_URL_SCHEME} URL of a database for Dagster's storage)"
}


class InstanceProfileError(environment.SettingError):
    """An unknown profile, or a profile whose dagster.yaml reads a variable that is not set."""


def instance_profile() -> str:
    """The profile `INTEGRATION_PLATFORM_PROFILE` names; `local` when it is unset or empty."""
    profile = os.environ.get(PROFILE_VARIABLE) or LOCAL
    if profile not in PROFILE_FILES:
        raise InstanceProfileError(
            f"{PROFILE_VARIABLE}={profile!r} is no instance profile: use one of "
            f"{', '.join(sorted(PROFILE_FILES))} (unset: {LOCAL})"
        )
    return profile


def storage_url() -> str | None:
    """The database of Dagster's storage in the production profile, checked as the profile is
    (unset or not psycopg2: InstanceProfileError); None in the local one (SQLite files under
    $DAGSTER_HOME)."""
    profile = instance_profile()
    if profile != PRODUCTION:
        return None
    instance_config_file(profile)
    return os.environ[POSTGRES_URL_VARIABLE]


def instance_config_file(profile: str) -> Path:
    """The profile's dagster.yaml, with every environment variable it reads set (Dagster would
    say only later, from deep in its config checks, which one is missing)."""
    path = PROFILE_FILES[profile]
    unset = [
        name
        for name in _env_references(yaml.safe_load(path.read_text()))
        if not os.environ.get(name)
    ]
    if unset:
        raise InstanceProfileError(
            f"the {profile} instance profile ({path.relative_to(environment.PROJECT_ROOT)}) "
            f"reads {', '.join(unset)} from the environment: set "
            + ", ".join(f"{name}{_EXAMPLES.get(name, '')}" for name in unset)
            + f", or leave {PROFILE_VARIABLE} unset for the local profile (SQLite)"
        )
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    if profile == PRODUCTION and not url.startswith(POSTGRES_URL_SCHEME):
        scheme = url.partition("://")[0] or "(none)"  # never the rest: it may hold a password
        raise InstanceProfileError(
            f"{POSTGRES_URL_VARIABLE} must start with {POSTGRES_URL_SCHEME}, not {scheme}://: "
            "dagster-postgres connects with psycopg2, and a plain postgresql:// URL would get "
            "psycopg 3, on which Dagster's event log fails"
        )
    return path


def _env_references(config: Any) -> Iterator[str]:
    """Names in Dagster's `{env: NAME}` config values, in the order they appear."""
    if isinstance(config, dict):
        if set(config) == {"env"} and isinstance(config["env"], str):
            yield config["env"]
            return
        for value in config.values():
            yield from _env_references(value)
    elif isinstance(config, list):
        for value in config:
            yield from _env_references(value)


def instance_config_text(config_file: Path, home: Path) -> str:
    """The profile's dagster.yaml as it goes into `home`: `${DAGSTER_HOME}` (the local
    profile's event log folder) becomes the absolute path, so a process that opens the instance
    from that folder with another DAGSTER_HOME in its environment reads the same files."""
    return config_file.read_text().replace("${DAGSTER_HOME}", str(home.resolve()))


def prepare_dagster_home() -> Path:
    """$DAGSTER_HOME holds the instance; dagster.yaml there is the instance profile's (the
    repository's dagster.yaml unless `INTEGRATION_PLATFORM_PROFILE` says otherwise). The demo
    client is one of the instance's `clients` partitions, so its days are there to
    materialize without registering anything; the `warehouse` pool gets its one slot (unless its
    limit was set already)."""
    # Here, not at the top: the API reads the profile from this module, and the dbt assets'
    # module brings dbt and dagster-dbt with it.
    from integration_platform.transform.dbt_assets import WAREHOUSE_POOL

    config_file = instance_config_file(instance_profile())
    home = environment.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_config_text(config_file, home))
    with DagsterInstance.from_config(str(home)) as instance:
        register_clients(instance, DEMO_CLIENT_ID)
        set_pools = {
            p.name for p in instance.event_log_storage.get_pool_limits() if not p.from_default
        }
        if (
            WAREHOUSE_POOL not in set_pools
        ):  # a limit someone set (dagster instance concurrency set)
            instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, WAREHOUSE_POOL_SLOTS)
    return home
