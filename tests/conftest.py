"""Shared fixtures: the sandbox vendors as real HTTP servers on free loopback ports, and a
warehouse the real pipeline built for two clients."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integration_platform import environment
from integration_platform_sandbox.chaos import ChaosSettings, Fault
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings
from tests.api.warehouse_fixture import BuiltWarehouse, build_published_warehouse

# `make test` runs the suite on two pytest-xdist workers. Each module's tests go to one worker
# (its module fixtures are made once), and so do the modules that share what a session fixture
# made (one platform, one marts warehouse, one demo run): the modules named here, by fixture.
# The platform's modules, the longest work by far, are handed out first (in one process they
# run last: pytest_collection_modifyitems). (xdist's own
# `--dist loadgroup` marks cannot do this under pytest 9: it renames node ids in a way pytest 9
# no longer reads.)
SHARED_MODULES = {
    "shared_platform": ("tests/e2e/test_platform_automation.py", "tests/e2e/test_readme_shell.py"),
    "marts_warehouse": (
        "tests/api/test_customers.py",
        "tests/integration/test_published_copy_clients.py",
    ),
    "demo_run": (
        "tests/e2e/test_log_redaction.py",
        "tests/e2e/test_pipeline_end_to_end.py",
        "tests/e2e/test_platform_commands.py",
    ),
}
GROUP_OF_MODULE = {module: group for group, modules in SHARED_MODULES.items() for module in modules}


def work_unit(nodeid: str) -> str:
    """The unit one worker takes whole: a shared fixture's modules, else the test's module."""
    module = nodeid.split("::")[0]
    return GROUP_OF_MODULE.get(module, module)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return SharedFixtureScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In one process: the platform's tests last, so its processes do not load the machine under
    the other tests. On xdist workers: a module that uses a shared fixture must be in
    SHARED_MODULES (or it would make the fixture again on another worker), and the shared units
    come first, in SHARED_MODULES' order. (Stable sorts: within a unit, the order as collected.)"""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: work_unit(item.nodeid) == "shared_platform")
        return
    for item in items:
        for fixture in SHARED_MODULES:
            if fixture in item.fixturenames and work_unit(item.nodeid) != fixture:
                raise pytest.UsageError(
                    f"{item.nodeid.split('::')[0]} uses the session fixture {fixture!r}: add "
                    f"it to SHARED_MODULES[{fixture!r}] in tests/conftest.py, so that one "
                    "xdist worker runs every module that shares it"
                )
    order = list(SHARED_MODULES)
    items.sort(
        key=lambda item: order.index(u) if (u := work_unit(item.nodeid)) in order else len(order)
    )


TEST_SEED = 7
TEST_CUSTOMERS = 300
# Starting takes about a second alone; on a crowded 2-core machine many times that.
START_SECONDS = 90.0


@pytest.fixture(autouse=True)
def local_instance_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test prepares the local Dagster instance unless it asks for the production one: a
    shell's INTEGRATION_PLATFORM_PROFILE must not send tests to its PostgreSQL."""
    monkeypatch.delenv("INTEGRATION_PLATFORM_PROFILE", raising=False)
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)


@pytest.fixture(scope="session")
def sandbox_credentials() -> SandboxCredentials:
    environment.load_sandbox_env()
    return SandboxCredentials.from_env()


@pytest.fixture(scope="session")
def sandbox(sandbox_credentials: SandboxCredentials) -> Iterator[Sandbox]:
    """One sandbox for the session, chaos off; tests switch chaos on through `chaos`."""
    server = Sandbox(
        SandboxSettings(seed=TEST_SEED, customers=TEST_CUSTOMERS), sandbox_credentials, base_port=0
    ).start(timeout=START_SECONDS)
    yield server
    server.stop()


@pytest.fixture
def make_sandbox(sandbox_credentials: SandboxCredentials) -> Iterator[Callable[..., Sandbox]]:
    """Start a private sandbox with custom settings; it stops when the test ends."""
    started: list[Sandbox] = []

    def make(**settings: Any) -> Sandbox:
        settings.setdefault("seed", TEST_SEED)
        settings.setdefault("customers", TEST_CUSTOMERS)
        server = Sandbox(SandboxSettings(**settings), sandbox_credentials, base_port=0).start(
            timeout=START_SECONDS
        )
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


ChaosSwitch = Callable[..., None]


@pytest.fixture
def chaos(sandbox: Sandbox) -> Iterator[ChaosSwitch]:
    """`chaos(vendor, settings=None, script=None)`: set one vendor's chaos; reset after the test."""

    def switch(
        vendor: str, settings: ChaosSettings | None = None, script: list[Fault | None] | None = None
    ) -> None:
        sandbox.engines[vendor].configure(settings or ChaosSettings(), script)

    yield switch
    for engine in sandbox.engines.values():
        engine.configure(ChaosSettings())


@pytest.fixture(scope="session")
def marts_warehouse(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    """Built once by the real pipeline (sandbox with two tenants, materialize, dbt build):
    about a minute alone; its tests only ever read it, or copies of it."""
    return build_published_warehouse(tmp_path_factory.mktemp("marts"))
