"""Brings the whole platform up locally: the webhook receiver, the sandbox vendors, the Dagster UI
and the Integration Platform API.

All run as child processes. The receiver starts first and the sandbox's billing is told to
send its webhooks there (`--webhook-url`); the launcher waits for each to answer before
starting the next, passes the vendors' base URLs and credentials through the environment, and
stops them all when interrupted: first the Dagster runs in flight get `grace_seconds` to finish,
then the rest are canceled through Dagster (`run_wind_down`), and only then are the processes
stopped. Each child runs in a session of its own, so a Ctrl-C in the terminal reaches the
launcher alone, not the runs. Each child's output goes to its own file under `data/logs/`;
the console shows the start-up lines, then what `console.monitor` prints: a status line per
process every `status_every` seconds, each distinct warning or error once, and a line when a
process exits. Before the API starts, the `demo` client is registered (it
uses the sandbox credentials of the environment) and a local admin API key is written to
`data/api-admin.key` unless `INTEGRATION_PLATFORM_ADMIN_KEY` is set.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
from dagster import DagsterInstance
from dagster_graphql import DagsterGraphQLClient

from integration_platform import environment
from integration_platform.api.bootstrap import ensure_admin_key_file, ensure_demo_client
from integration_platform.clients.api_keys import ApiKeys
from integration_platform.clients.crypto import local_key_file
from integration_platform.clients.registry import ClientRegistry
from integration_platform.console.log_lines import LogTail
from integration_platform.console.monitor import LAST_LINES_ON_EXIT, Child, Console, last_lines
from integration_platform.console.status import (
    ApiProbe,
    DagsterProbe,
    LineProbe,
    Probe,
    SandboxProbe,
    StreamsProbe,
    WebhooksProbe,
)
from integration_platform.dagster_warnings import silence_dagster_notices
from integration_platform.logs import configure_logging
from integration_platform.orchestration.instance import prepare_dagster_home
from integration_platform.run_wind_down import RunWindDown
from integration_platform.sandbox_dependency import sandbox_required
from integration_platform.specs.loader import load_specs
from integration_platform.transform.dbt_assets import prepare_dbt_project
from integration_platform.webhooks.app import route_path
from integration_platform.webhooks.inbox import inbox_path

DEFAULT_GRACE_SECONDS = 60.0


def wait_until_healthy(
    urls: Mapping[str, str], timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until every vendor's health route answers 200, or fail saying which did not."""
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    while pending:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the sandbox exited with code {process.returncode} while starting")
        for vendor, url in list(pending.items()):
            try:
                if httpx.get(f"{url}/_sandbox/health", timeout=1.0).status_code == 200:
                    del pending[vendor]
            except httpx.TransportError:
                pass
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"no answer within {timeout:.0f} s from: {', '.join(pending)}")
        if pending:
            time.sleep(0.1)


def wait_until_receiving(url: str, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    """Block until the webhook receiver's health route answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the webhook receiver exited with code {process.returncode} while starting"
            )
        try:
            if httpx.get(f"{url}/_health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the webhook receiver did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def billing_webhook_path() -> str | None:
    """Where the sandbox's billing should POST: the billing spec's route, if it has webhooks."""
    spec = load_specs().get("billing")
    return route_path(spec) if spec is not None and spec.webhooks is not None else None


def prepare_api(data_dir: Path) -> Path | None:
    """Register the demo client and make sure a local admin key exists (its file, if any)."""
    registry = ClientRegistry.open_default()
    ensure_demo_client(registry)
    return ensure_admin_key_file(ApiKeys(registry.sessions), data_dir)


def wait_until_serving(url: str, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    """Block until the API's liveness route answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the API exited with code {process.returncode} while starting")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def _stop_on_terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def logs_dir() -> Path:
    """`<data dir>/logs`: one file per process of the platform."""
    path = environment.data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_child(
    name: str,
    command: list[str],
    *,
    env: Mapping[str, str],
    logs: Path,
    probe: Probe | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start one process with its output in `<logs>/<name>.log` (the last run's log is kept as
    `<name>.previous.log`)."""
    log = logs / f"{name}.log"
    if log.exists():
        log.replace(logs / f"{name}.previous.log")
    tail = LogTail(log)
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            # Its own session: a Ctrl-C in the terminal reaches the launcher alone, which stops
            # the runs first (a run interrupted by the signal itself would end FAILURE).
            start_new_session=True,
        )
    return Child(name, process, log, tail, probe or LineProbe())


def _own_log(logs: Path) -> Child:
    """The launcher's own log lines (JSON) go to `<logs>/up.log`; the console watches it too."""
    log = logs / "up.log"
    if log.exists():
        log.replace(logs / "up.previous.log")
    tail = LogTail(log)
    configure_logging(stream=log.open("a", buffering=1))
    return Child("up", None, log, tail)


def run_platform(
    *,
    host: str,
    base_port: int,
    ui_port: int,
    sandbox_args: list[str],
    vendors: tuple[str, ...],
    webhook_port: int | None = None,
    api_port: int = 8000,
    status_every: float = 60.0,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> int:
    # Ctrl-C and `kill` both stop everything; SIGINT may arrive ignored from a parent shell.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_terminate)
    with sandbox_required("`integration-platform up`"):
        from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
        from integration_platform_sandbox.server import vendor_urls
    silence_dagster_notices()
    environment.load_env()

    def echo(line: str) -> None:
        print(line, flush=True)

    logs = logs_dir()
    own = _own_log(logs)
    echo(f"Starting the platform; each process logs to {logs}/<process>.log")
    urls = vendor_urls(host, base_port, vendors)
    env = dict(os.environ)
    env.update({VENDOR_URL_VARIABLES[v]: url for v, url in urls.items()})
    dagster_home = prepare_dagster_home()
    env["DAGSTER_HOME"] = str(dagster_home)
    ui_url = f"http://127.0.0.1:{ui_port}"
    env.setdefault("DAGSTER_WEBSERVER_URL", ui_url)
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # dbt must be on PATH
    disagreements = environment.dotenv_disagreements(env)
    if disagreements:
        echo(
            f"warning: {', '.join(disagreements)} set to other values in "
            f"{environment.DOTENV_FILE} than in the environment: Dagster (dg dev) reads .env "
            "itself and lets it win, so its runs would use .env's values and every other "
            "process the environment's. Keep each variable in one of them."
        )
    cli = [sys.executable, "-m", "integration_platform.cli"]

    receiver_port = webhook_port or base_port + 10
    receiver_url = f"http://{host}:{receiver_port}"
    children: list[Child] = []
    dagster: Child | None = None
    dagster_started = datetime.now(UTC)
    try:
        webhook_path = billing_webhook_path()
        if webhook_path is not None:
            receiver = start_child(
                "webhooks",
                [*cli, "webhooks", "serve", "--host", host, "--port", str(receiver_port)],
                env=env,
                logs=logs,
                probe=WebhooksProbe(inbox_path()),
            )
            children.append(receiver)
            wait_until_receiving(receiver_url, timeout=60, process=receiver.process)
            sandbox_args = [*sandbox_args, "--webhook-url", receiver_url + webhook_path]
            echo(f"  webhook receiver  {receiver_url}{webhook_path}")
        sandbox = start_child(
            "sandbox",
            [
                *cli,
                "sandbox",
                "up",
                "--host",
                host,
                "--base-port",
                str(base_port),
                "--vendors",
                ",".join(vendors),
                *sandbox_args,
            ],
            env=env,
            logs=logs,
            probe=SandboxProbe(urls),
        )
        children.append(sandbox)
        wait_until_healthy(urls, timeout=60, process=sandbox.process)
        echo("  sandbox vendors   " + ", ".join(f"{v} {u}" for v, u in urls.items()))
        echo(
            "                    tenants' credentials: GET <vendor URL>/_sandbox/tenants, or "
            "`integration-platform sandbox tenants`"
        )
        streams = [
            f"{spec.source}.{name}" for spec in load_specs().values() for name in spec.streams
        ]
        if streams:
            # Event streams (SSE) into raw: a long-lived consumer; SIGTERM flushes its batch.
            children.append(
                start_child(
                    "streams",
                    [*cli, "streams", "consume"],
                    env=env,
                    logs=logs,
                    probe=StreamsProbe(),
                )
            )
            echo(f"  stream consumer   {', '.join(streams)}")
        # The dbt files and manifest the definitions load (they prepare nothing themselves).
        prepare_dbt_project(load_specs())
        # `dg dev`: Dagster's replacement for the superseded `dagster dev`; given the
        # workspace file, it starts the webserver and daemon as `dagster dev` did.
        dagster_started = datetime.now(UTC)
        dagster = start_child(
            "dagster",
            [
                str(bin_dir / "dg"),
                "dev",
                "-h",
                "127.0.0.1",
                "-p",
                str(ui_port),
                "-w",
                str(environment.PROJECT_ROOT / "workspace.yaml"),
            ],
            env=env,
            logs=logs,
            probe=DagsterProbe(dagster_home, ui_url),
            cwd=environment.PROJECT_ROOT,
        )
        children.append(dagster)
        admin_key_file = prepare_api(environment.data_dir())
        api = start_child(
            "api",
            [*cli, "api", "serve", "--host", "127.0.0.1", "--port", str(api_port)],
            env=env,
            logs=logs,
            probe=ApiProbe(),
        )
        children.append(api)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_until_serving(api_url, timeout=60, process=api.process)
        key_file = local_key_file()
        echo(
            f"  API               {api_url}  (Swagger UI: {api_url}/docs"
            + (f"; admin key in {admin_key_file}" if admin_key_file else "")
            + (f"; credentials encrypted with the key in {key_file}" if key_file else "")
            + ")"
        )
        echo(f"  Dagster UI        {ui_url}  (starting; a line says when it answers)")
        echo(
            f"A status line per process every {status_every:g} s, each warning or error once; "
            "Ctrl-C stops everything."
        )
        exited = Console(echo, status_every=status_every).watch([own, *children])
        return (exited.process.returncode if exited.process else 0) or 0
    except KeyboardInterrupt:
        echo("stopping ...")
        return 0
    except (RuntimeError, TimeoutError):
        if children:  # the one that was starting: what it said before it failed
            echo(f"the last lines of {children[-1].log}:")
            for line in last_lines(children[-1].log, LAST_LINES_ON_EXIT):
                echo(f"    {line}")
        raise
    finally:
        if dagster is not None and dagster.process is not None and dagster.process.poll() is None:
            wind_down_runs(
                dagster_home, ui_port, since=dagster_started, grace_seconds=grace_seconds, echo=echo
            )
        stop_children([child.process for child in children if child.process is not None])


def wind_down_runs(
    dagster_home: Path,
    ui_port: int,
    *,
    since: datetime,
    grace_seconds: float,
    echo: Callable[[str], None],
) -> None:
    """Let the runs started since `since` finish within the grace period, cancel the rest."""
    try:
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            graphql = DagsterGraphQLClient("127.0.0.1", port_number=ui_port, timeout=30)
            outcome = RunWindDown(instance, graphql, since=since, echo=echo).run(
                grace_seconds=grace_seconds
            )
    except KeyboardInterrupt:  # a third Ctrl-C: stop without waiting any longer
        echo("stopping without waiting for the runs")
        return
    if outcome.finished or outcome.left_unfinished:
        echo(outcome.summary())


def stop_children(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each process's group (its session: `dg dev` with the webserver, daemon and code
    server), latest first; SIGKILL to what is left of a group after 20 s."""
    for process in reversed(processes):
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        _signal_group(process, signal.SIGKILL)  # whatever it left behind


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(process.pid, signum)
