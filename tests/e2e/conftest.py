"""What the session's end-to-end tests share, each made once: one `make demo` (the whole job,
sandbox to marts; tests/e2e/demo_run.py) whose output several tests read, and one real
platform for the tests that need the Dagster daemon.

`integration-platform up` (what `make run` runs) starts once, in a folder that stands for the
repository's root (tests/e2e/readme_shell.py's Workdir), on free ports. The README's shell
blocks (test_readme_shell.py) and the automation tests (test_platform_automation.py) share it;
tests/conftest.py says when their tests run: in one process, last (the platform stops when they
are done instead of loading the machine under the other tests); on two xdist workers, first, on
a worker of their own.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.demo_run import DemoRun, run_make_demo
from tests.e2e.platform import specs_copy
from tests.e2e.readme_shell import Ports, Workdir, stop_group, wait_for
from tests.e2e.test_platform_commands import free_port_block

PLATFORM_START = 300.0  # `up` on a loaded 2-core machine: the UI answered in 150+ s


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`make demo`, once; its tests only read what it left."""
    return run_make_demo(tmp_path_factory.mktemp("demo-data"))


@pytest.fixture(scope="session")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workdir]:
    ports = Ports(
        base=free_port_block(6),
        ui=free_port_block(1),
        api=free_port_block(1),
        webhooks=free_port_block(1),
    )
    workdir = Workdir.create(tmp_path_factory.mktemp("platform-root"), ports)
    # The platform's processes load specs whose crm schedule ticks every minute (so a
    # scheduled day lands within the session), report stream loads every 3 minutes (5 by
    # default) and drain webhooks after 2 minutes (5 by default): each report or drain is an
    # update that the automation rebuilds the marts for, so more often would keep a dbt build
    # running all along and slow every other test of the platform. The README's commands load
    # the repository's specs.
    sources = specs_copy(workdir.path / "platform-sources", {"crm": "* * * * *"})
    env = {
        **workdir.env,
        "SOURCES_PATH": str(sources),
        "STREAM_REPORT_EVERY_SECONDS": "180",
        "WEBHOOK_BATCH_WINDOW_SECONDS": "120",
    }
    log = workdir.path / "up.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(workdir.path / ".venv" / "bin" / "integration-platform"),
                "up",
                "--base-port",
                str(ports.base),
                "--ui-port",
                str(ports.ui),
                "--api-port",
                str(ports.api),
                "--webhook-port",
                str(ports.webhooks),
                # No test depends on the population's size (make run's is 1,000): a smaller
                # one makes the week-long runs shorter.
                "--customers",
                "300",
            ],
            cwd=workdir.path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exited() -> str:
        if process.poll() is None:
            return ""
        return f"the platform exited ({process.returncode}):\n{log.read_text()[-4000:]}"

    def ready() -> bool:
        key = workdir.path / "data" / "api-admin.key"
        if "Dagster UI ready" not in log.read_text() or not key.exists():
            return False
        try:
            answer = httpx.get(f"http://127.0.0.1:{ports.api}/health/ready", timeout=10)
        except httpx.TransportError:
            return False
        return answer.status_code == 200

    try:
        wait_for(ready, PLATFORM_START, "`integration-platform up`", exited)
        yield workdir
    finally:
        # Ctrl-C, as the README says; the launcher stops its children.
        stop_group(process, signal.SIGINT)
