"""Dagster resources of the raw layer: one API resource per source, the warehouse, the landing zone.

Each source's resource is a ConfigurableResource whose fields are the environment variables
its spec references, bound with `EnvVar`: values are read when a run starts, never stored in
definitions, config or metadata. A run needs only the variables of the sources it touches, and
one that is missing fails the run with the spec's own error (variable, spec file, where the
sandbox's values live) rather than Dagster's config error. Other clients' values come from a
`CredentialsProvider` (the client store, handed over by the definitions).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import duckdb
from dagster import ConfigurableResource, EnvVar
from dagster_duckdb import DuckDBResource
from pydantic import Field, create_model

from integration_platform import environment
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.extraction.state import IncrementalState
from integration_platform.landing.loader import DEFAULT_LOAD_MEMORY_MB
from integration_platform.landing.warehouse import Warehouse, check_storage_version
from integration_platform.landing.zone import LandingZone, folder_under, landing_root
from integration_platform.paths import path_under
from integration_platform.specs.credentials import (
    CredentialsProvider,
    NoClientStore,
    referenced_variables,
)
from integration_platform.specs.loader import load_spec
from integration_platform.specs.models import SourceSpec


class ApiSourceResource(ConfigurableResource["ApiSourceResource"]):
    """Base of the per-source API resources; subclasses add one field per variable."""

    source: str
    spec_file: str
    # Where clients other than the demo client get their values: the client store, which
    # api_resource binds to each source's class, or none (the demo client only). A class
    # attribute, not config: Dagster rebuilds a resource from its config for each run.
    credentials: ClassVar[CredentialsProvider] = NoClientStore()

    def spec(self, client_id: str = DEMO_CLIENT_ID) -> SourceSpec:
        """The source's spec resolved for a client: another client's from its credentials, which
        the provider reads from the client store (never from this process's environment, which
        holds the operator's own); the demo client's from this resource's fields, where a
        variable not bound (it was unset when definitions loaded) is read now, and one unset now
        too is a SpecError naming it and the spec file."""
        if client_id != DEMO_CLIENT_ID:
            env = self.credentials.credentials_for(client_id, self.source)
            return load_spec(Path(self.spec_file), env=env)
        env = {}
        for name, value in self._variables().items():
            current = value if value is not None else os.environ.get(name.upper())
            if current is not None:
                env[name.upper()] = str(current)
        return load_spec(Path(self.spec_file), env=env)

    def _variables(self) -> dict[str, Any]:
        base = set(ApiSourceResource.model_fields)
        return {name: getattr(self, name) for name in type(self).model_fields if name not in base}


def api_resource(
    spec: SourceSpec, credentials: CredentialsProvider | None = None
) -> ApiSourceResource:
    """An ApiSourceResource subclass for this spec, its variables bound through EnvVar; other
    clients' credentials from `credentials` (none given: the demo client only)."""
    assert spec.file is not None
    variables = referenced_variables(spec.file)
    fields: dict[str, Any] = {name.lower(): (str | None, None) for name in variables}
    model = create_model(f"{spec.source.title()}ApiResource", __base__=ApiSourceResource, **fields)
    # Bound only when set: Dagster fails a run on an unset EnvVar with a config error that
    # names neither the spec nor where the sandbox's values are; `spec()` says both.
    values = {
        name.lower(): EnvVar(name)
        for name, has_default in variables.items()
        if not has_default and os.environ.get(name)
    }
    if credentials is not None:
        model.credentials = credentials
    resource: ApiSourceResource = model(source=spec.source, spec_file=str(spec.file), **values)
    return resource


class WarehouseResource(ConfigurableResource["WarehouseResource"]):
    """The DuckDB warehouse file, its write lock and its published read-only copy."""

    path: str
    lock_timeout_seconds: float = 300.0
    publish: bool = True
    # DuckDB's memory limit during a load: the staged partition spills beyond it, so memory
    # stays flat however large a partition is; more is faster where memory allows.
    load_memory_mb: int = DEFAULT_LOAD_MEMORY_MB
    # The DuckDB storage version of the published copy (v1.4.0: DuckDB 1.4 and later open it;
    # `as-is`: a byte copy of the warehouse); None reads PUBLISHED_STORAGE_VERSION.
    published_storage_version: str | None = None
    # DuckDB settings for the connections below (threads, memory_limit, ...), as
    # dagster-duckdb's DuckDBResource takes them.
    connection_config: dict[str, Any] = Field(default_factory=dict)

    def warehouse(self) -> Warehouse:
        return Warehouse(
            Path(self.path),
            lock_timeout_seconds=self.lock_timeout_seconds,
            load_memory_mb=self.load_memory_mb,
            published_storage_version=self.published_storage_version,
        )

    @contextmanager
    def read_write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection to the warehouse, open only inside its write lock: DuckDB
        allows one read-write process or many read-only ones, never both."""
        store = self.warehouse()
        with store.locked(), self._duckdb(store.path).get_connection() as connection:
            yield connection

    @contextmanager
    def read_only(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the published copy, which any number of readers share
        and no writer waits for; to the warehouse itself, inside the write lock, when no copy
        is published (publish off, or nothing built yet)."""
        store = self.warehouse()
        if self.publish and store.published_path.exists():
            with self._duckdb(store.published_path, read_only=True).get_connection() as connection:
                yield connection
            return
        with (
            store.locked(),
            self._duckdb(store.path, read_only=True).get_connection() as connection,
        ):
            yield connection

    def _duckdb(self, database: Path, *, read_only: bool = False) -> DuckDBResource:
        # DuckDBResource opens read-write unless its config says otherwise.
        mode = {"access_mode": "READ_ONLY"} if read_only else {}
        return DuckDBResource(
            database=str(database), connection_config={**self.connection_config, **mode}
        )


class LandingZoneResource(ConfigurableResource["LandingZoneResource"]):
    """Where raw pages land, plus the engine's state (incremental marks, shared rate limits),
    each in a folder per client: clients never share pages, marks or API quotas.

    `root` is a folder or an object-storage URL (`s3://bucket/prefix`, LANDING_URL); on object
    storage the partition leases and DuckDB's spill files go under `state_root`."""

    root: str
    state_root: str
    keep_attempts: int = 2
    # A run waits this long for another run that holds the same partition, then fails.
    lease_timeout_seconds: float = 1800.0

    def zone(self, client_id: str = DEMO_CLIENT_ID) -> LandingZone:
        return LandingZone(
            folder_under(landing_root(self.root), client_id, what="client id"),
            scratch=path_under(Path(self.state_root), "landing", client_id, what="client id"),
        )

    def incremental_state(self, client_id: str = DEMO_CLIENT_ID) -> IncrementalState:
        return IncrementalState(
            path_under(Path(self.state_root), "incremental", client_id, what="client id")
        )

    def rate_limit_dir(self, client_id: str = DEMO_CLIENT_ID) -> Path:
        return path_under(Path(self.state_root), "ratelimit", client_id, what="client id")


def default_resources() -> dict[str, ConfigurableResource[Any]]:
    data = environment.data_dir()
    check_storage_version(
        environment.published_storage_version()
    )  # a typo fails here, not after a load
    return {
        "warehouse": WarehouseResource(path=str(environment.warehouse_path())),
        "landing": LandingZoneResource(
            root=environment.landing_url(), state_root=str(data / "state")
        ),
    }
