"""Brings the whole platform up locally: the webhook receiver, the sandbox vendors, the Dagster UI
and the Integration Platform API.

All run as child processes. The receiver starts first and the sandbox's billing is told to
send its webhooks there (`--webhook-url`); the launcher waits for each to answer before
starting the next, passes the vendors' base URLs and credentials through the environment, and
stops them all when interrupted. Before the API starts, the `demo` client is registered (it
uses the sandbox credentials of the environment) and a local admin API key is written to
`data/api-admin.key` unless `INTEGRATION_PLATFORM_ADMIN_KEY` is set.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from integration_platform import environment
from integration_platform.clients.slugs import DEMO_CLIENT_ID
from integration_platform.sandbox.roster import ALL_VENDORS, VENDORS
from integration_platform.sandbox.server import vendor_urls
from integration_platform.specs.loader import load_specs
from integration_platform.webhooks.app import route_path

VENDOR_URL_VARIABLES = {vendor: f"{vendor.upper()}_BASE_URL" for vendor in ALL_VENDORS}


def wait_until_healthy(urls: Mapping[str, str], timeout: float,
                       process: subprocess.Popen[bytes] | None = None) -> None:
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


def wait_until_receiving(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Block until the webhook receiver's health route answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the webhook receiver exited with code {process.returncode} "
                               "while starting")
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


def prepare_dagster_home() -> Path:
    """$DAGSTER_HOME holds the instance; dagster.yaml there comes from the repository's copy.
    The demo client is one of the instance's `clients` partitions, so its days are there to
    materialize without registering anything."""
    from dagster import DagsterInstance

    from integration_platform.assets.partitions import register_clients

    home = environment.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(environment.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        register_clients(instance, DEMO_CLIENT_ID)
    return home


def prepare_api(data_dir: Path) -> Path | None:
    """Register the demo client and make sure a local admin key exists (its file, if any)."""
    from integration_platform.api.bootstrap import ensure_admin_key_file, ensure_demo_client
    from integration_platform.clients.api_keys import ApiKeys
    from integration_platform.clients.registry import ClientRegistry

    registry = ClientRegistry.open_default()
    ensure_demo_client(registry)
    return ensure_admin_key_file(ApiKeys(registry.sessions), data_dir)


def wait_until_serving(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Block until the API's liveness route answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
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


def run_platform(*, host: str, base_port: int, ui_port: int, sandbox_args: list[str],
                 webhook_port: int | None = None, vendors: tuple[str, ...] = VENDORS,
                 api_port: int = 8000) -> int:
    # Ctrl-C and `kill` both stop everything; SIGINT may arrive ignored from a parent shell.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_terminate)
    environment.load_sandbox_env()
    urls = vendor_urls(host, base_port, vendors)
    env = dict(os.environ)
    env.update({VENDOR_URL_VARIABLES[v]: url for v, url in urls.items()})
    env["DAGSTER_HOME"] = str(prepare_dagster_home())
    env.setdefault("DAGSTER_WEBSERVER_URL", f"http://127.0.0.1:{ui_port}")
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # dbt must be on PATH

    receiver_port = webhook_port or base_port + 10
    receiver_url = f"http://{host}:{receiver_port}"
    children: list[subprocess.Popen[bytes]] = []
    try:
        webhook_path = billing_webhook_path()
        if webhook_path is not None:
            receiver = subprocess.Popen(
                [sys.executable, "-m", "integration_platform.cli", "webhooks", "serve",
                 "--host", host, "--port", str(receiver_port)], env=env)
            children.append(receiver)
            wait_until_receiving(receiver_url, timeout=60, process=receiver)
            sandbox_args = [*sandbox_args, "--webhook-url", receiver_url + webhook_path]
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "integration_platform.cli", "sandbox", "up", "--host", host,
             "--base-port", str(base_port), "--vendors", ",".join(vendors), *sandbox_args],
            env=env)
        children.append(sandbox)
        wait_until_healthy(urls, timeout=60, process=sandbox)
        print(f"Sandbox tenants' credentials: GET {next(iter(urls.values()))}/_sandbox/tenants "
              "(each vendor lists its own), or `integration-platform sandbox tenants` for all",
              flush=True)
        if any(spec.streams for spec in load_specs().values()):
            # Event streams (SSE) into raw: a long-lived consumer; SIGTERM flushes its batch.
            children.append(subprocess.Popen(
                [sys.executable, "-m", "integration_platform.cli", "streams", "consume"],
                env=env))
        dagster = subprocess.Popen(
            [str(bin_dir / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(ui_port),
             "-w", str(environment.PROJECT_ROOT / "workspace.yaml")],
            cwd=environment.PROJECT_ROOT, env=env)
        children.append(dagster)
        admin_key_file = prepare_api(environment.data_dir())
        api = subprocess.Popen(
            [sys.executable, "-m", "integration_platform.cli", "api", "serve",
             "--host", "127.0.0.1", "--port", str(api_port)], env=env)
        children.append(api)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_until_serving(api_url, timeout=60, process=api)
        print(f"Integration Platform API: {api_url}  (Swagger UI: {api_url}/docs"
              + (f"; admin key in {admin_key_file}" if admin_key_file else "") + ")", flush=True)
        print(f"Dagster UI: http://127.0.0.1:{ui_port}  (Ctrl-C stops everything)", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = next(child for child in children if child.poll() is not None)
        return failed.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
