"""Brings the whole platform up locally: the sandbox vendors, then the Dagster UI beside them.

Both run as child processes; the launcher waits for the sandbox to answer before starting
Dagster, passes the vendors' base URLs and credentials through the environment, and stops
both when interrupted.
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
from integration_platform.sandbox.roster import VENDORS

VENDOR_URL_VARIABLES = {vendor: f"{vendor.upper()}_BASE_URL" for vendor in VENDORS}


def sandbox_urls(host: str, base_port: int) -> dict[str, str]:
    return {vendor: f"http://{host}:{base_port + offset}" for offset, vendor in enumerate(VENDORS)}


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


def prepare_dagster_home() -> Path:
    """$DAGSTER_HOME holds the instance; dagster.yaml there comes from the repository's copy."""
    home = environment.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(environment.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def _stop_on_terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_platform(*, host: str, base_port: int, ui_port: int, sandbox_args: list[str]) -> int:
    # Ctrl-C and `kill` both stop everything; SIGINT may arrive ignored from a parent shell.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_terminate)
    environment.load_sandbox_env()
    urls = sandbox_urls(host, base_port)
    env = dict(os.environ)
    env.update({VENDOR_URL_VARIABLES[v]: url for v, url in urls.items()})
    env["DAGSTER_HOME"] = str(prepare_dagster_home())
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # dbt must be on PATH

    sandbox = subprocess.Popen(
        [sys.executable, "-m", "integration_platform.cli", "sandbox", "up", "--host", host,
         "--base-port", str(base_port), *sandbox_args], env=env)
    children: list[subprocess.Popen[bytes]] = [sandbox]
    try:
        wait_until_healthy(urls, timeout=60, process=sandbox)
        dagster = subprocess.Popen(
            [str(bin_dir / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(ui_port),
             "-w", str(environment.PROJECT_ROOT / "workspace.yaml")],
            cwd=environment.PROJECT_ROOT, env=env)
        children.append(dagster)
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
