"""`integration-platform up` (make run's command) on free ports, for tests that need the real
Dagster daemon: started once per module that asks for it, read through its instance."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef

from integration_platform.environment import PROJECT_ROOT
from tests.e2e.readme_shell import stop_group
from tests.e2e.test_platform_commands import free_port_block

BIN = Path(sys.executable).parent
START_TIMEOUT_SECONDS = 300  # `up` on a loaded 2-core machine: the UI answered in 150+ s


@dataclass
class Platform:
    home: Path  # DAGSTER_HOME
    data: Path  # INTEGRATION_PLATFORM_DATA_DIR
    ui: str
    api: str
    base_port: int
    log: Path  # what `up` printed
    process: subprocess.Popen[bytes] | None = None  # when started here (not the shared one)
    output: IO[bytes] | None = None
    admin_key: str = ""
    _instance: DagsterInstance | None = field(default=None, repr=False)

    @property
    def instance(self) -> DagsterInstance:
        if self._instance is None:
            self._instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))
        return self._instance

    def api_client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api,
            timeout=60,
            headers={"Authorization": f"Bearer {self.admin_key}"},
        )

    def runs(self, status: DagsterRunStatus | None = None, **tags: str) -> list[Any]:
        statuses = [status] if status else []
        return list(
            self.instance.get_runs(RunsFilter(tags=tags or None, statuses=statuses or None))
        )

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.ui}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        answer.raise_for_status()
        body = answer.json()
        assert "errors" not in body, body
        return dict(body["data"])

    def stop_schedule(self, name: str) -> None:
        """Stop a schedule as its toggle in the UI does."""
        found = self.graphql(
            """query Schedule($selector: ScheduleSelector!) {
                 scheduleOrError(scheduleSelector: $selector) {
                   __typename ... on Schedule { scheduleState { id } } } }""",
            {
                "selector": {
                    "repositoryLocationName": "integration_platform",
                    "repositoryName": "__repository__",
                    "scheduleName": name,
                }
            },
        )["scheduleOrError"]
        assert found["__typename"] == "Schedule", found
        stopped = self.graphql(
            """mutation Stop($id: String!) {
                 stopRunningSchedule(id: $id) { __typename ... on PythonError { message } } }""",
            {"id": found["scheduleState"]["id"]},
        )["stopRunningSchedule"]
        assert stopped["__typename"] == "ScheduleStateResult", stopped

    def tenant_credentials(self, tenant: int, tenants: int | None = None) -> dict[str, Any]:
        """The sandbox tenant's credentials for every source, as `POST /clients` takes them."""
        shown = subprocess.run(
            [
                str(BIN / "integration-platform"),
                "sandbox",
                "tenants",
                *(["--tenants", str(tenants)] if tenants else []),
                "--tenant",
                str(tenant),
                "--json",
                "--base-port",
                str(self.base_port),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return dict(json.loads(shown)["tenants"][0]["credentials"])

    def log_tail(self, lines: int = 60) -> str:
        if self.output is not None:
            self.output.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    @classmethod
    def of_workdir(cls, workdir: Any) -> Platform:
        """The session's shared platform (tests/e2e/conftest.py), seen as a Platform."""
        path, ports = workdir.path, workdir.ports
        return cls(
            home=path / ".dagster_home",
            data=path / "data",
            ui=f"http://127.0.0.1:{ports.ui}",
            api=f"http://127.0.0.1:{ports.api}",
            base_port=ports.base,
            log=path / "up.out",
            admin_key=(path / "data" / "api-admin.key").read_text().strip(),
        )


def specs_copy(folder: Path, schedules: dict[str, str]) -> Path:
    """A copy of the repository's sources/ (specs and their query files) in `folder`, with
    these sources' `schedule:` crons replaced."""
    shutil.copytree(PROJECT_ROOT / "sources", folder, dirs_exist_ok=True)
    for source, cron in schedules.items():
        spec = folder / f"{source}.yaml"
        lines = [
            f'schedule: "{cron}"' if line.startswith("schedule:") else line
            for line in spec.read_text().splitlines()
        ]
        spec.write_text("\n".join(lines) + "\n")
    return folder


def dbt_project_copy(folder: Path) -> Path:
    """A copy of the repository's dbt project (without what builds and prepares write), for a
    command run with other specs: `prepare` (which `materialize`, `demo` and `up` call) writes
    the spec-derived models into the project it is given, and the session's shared platform
    (tests/e2e/conftest.py) runs on the repository's; set DBT_PROJECT_DIR to the copy."""
    shutil.copytree(
        PROJECT_ROOT / "dbt_project",
        folder,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml", "generated"),
    )
    return folder


def start_platform(
    root: Path,
    *,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    instance_env: dict[str, str] | None = None,
) -> Platform:
    """`integration-platform up` on free ports, data and instance under `root`; returns once
    the Dagster UI and the API answer. The instance is the local profile's, unless
    `instance_env` names another (`INTEGRATION_PLATFORM_PROFILE` and what it reads)."""
    base, ui, api, webhooks = (
        free_port_block(4),
        free_port_block(1),
        free_port_block(1),
        free_port_block(1),
    )
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "INTEGRATION_PLATFORM_DATA_DIR": str(root / "data"),
        **(env or {}),
    }
    for variable in (
        "INTEGRATION_PLATFORM_ADMIN_KEY",
        "INTEGRATION_PLATFORM_SECRET_KEY",
        "DATABASE_URL",
        "DAGSTER_WEBSERVER_URL",
        "INTEGRATION_PLATFORM_PROFILE",  # the local Dagster instance, whatever the shell says
        "DAGSTER_POSTGRES_URL",
    ):
        environment.pop(variable, None)
    environment.update(instance_env or {})
    root.mkdir(parents=True, exist_ok=True)
    output = (root / "up.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "integration-platform"),
            "up",
            "--base-port",
            str(base),
            "--ui-port",
            str(ui),
            "--api-port",
            str(api),
            "--webhook-port",
            str(webhooks),
            "--status-every",
            "30",
            *(extra_args or []),
        ],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    platform = Platform(
        home=root / "dagster_home",
        data=root / "data",
        ui=f"http://127.0.0.1:{ui}",
        api=f"http://127.0.0.1:{api}",
        base_port=base,
        log=root / "up.log",
        process=process,
        output=output,
    )
    try:
        eventually(
            lambda: _answers(f"{platform.ui}/server_info") and _answers(f"{platform.api}/health"),
            timeout=START_TIMEOUT_SECONDS,
            what="the Dagster UI and the API to answer",
            alive=process,
            platform=platform,
        )
        platform.admin_key = (platform.data / "api-admin.key").read_text().strip()
    except BaseException:
        stop_platform(platform)
        raise
    return platform


def stop_platform(platform: Platform) -> str:
    """Ctrl-C, as a user stops `make run`; returns the console output. What the launcher did
    not stop within 240 s is killed (`stop_group`)."""
    assert platform.process is not None and platform.output is not None
    if platform.process.poll() is None:
        stop_group(platform.process, signal.SIGINT, timeout=240)
    if platform._instance is not None:
        platform._instance.dispose()
    platform.output.close()
    return platform.log.read_text(errors="replace")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def eventually(
    check: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    alive: subprocess.Popen[bytes] | None = None,
    platform: Platform | None = None,
    every: float = 2.0,
) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` (and the platform's
    last lines) after `timeout` seconds, or at once if the platform exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        tail = f"\n--- up.log ---\n{platform.log_tail()}" if platform else ""
        if alive is None and platform is not None:
            alive = platform.process
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"the platform exited while waiting for {what}{tail}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}{tail}")
        time.sleep(every)
