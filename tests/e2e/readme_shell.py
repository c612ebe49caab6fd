"""Running the README's shell blocks as a newcomer would: in a working folder of their own that
looks like the repository's root, with the default ports moved to free loopback ones."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
from dotenv import dotenv_values

from integration_platform.environment import PROJECT_ROOT, SANDBOX_ENV_FILE
from tests.e2e.readme_blocks import FencedBlock, fenced_blocks

SHELL_LANGUAGES = ("sh", "bash", "console", "shell")
VENV = Path(sys.prefix)

# What the folder a newcomer runs commands in holds (the repository's root), as far as the
# README's commands read it; config/ is a copy whose sandbox.env names the test's ports.
LINKED = (
    "sources",
    "sources_registry",
    "dbt_project",
    "integration_platform",
    "sandbox",
    "Makefile",
    "pyproject.toml",
    "constraints.txt",
    "workspace.yaml",
    "dagster.yaml",
)
# Variables the platform reads that would make the blocks run against something else than
# the working folder's files and the test's platform.
PLATFORM_VARIABLES = (
    "SOURCES_PATH",
    "WAREHOUSE_PATH",
    "DATABASE_URL",
    "INTEGRATION_PLATFORM_PROFILE",
    "DAGSTER_POSTGRES_URL",
    "DAGSTER_WEBSERVER_URL",
    "DAGSTER_UI_URL",
    "INTEGRATION_PLATFORM_ADMIN_KEY",
    "INTEGRATION_PLATFORM_SECRET_KEY",
    "WEBHOOK_INBOX_PATH",
    "ALERT_WEBHOOK_URL",
    "VIRTUAL_ENV",
)


def shell_blocks() -> list[FencedBlock]:
    return [block for block in fenced_blocks() if block.language in SHELL_LANGUAGES]


def commands(block: FencedBlock) -> list[str]:
    """The block's commands: its lines with `\\` continuations joined, comments and blank
    lines left out (a multi-line quote, as in a `duckdb -c "..."`, stays one command)."""
    joined: list[str] = []
    pending = ""
    for line in block.text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if line.endswith("\\") or pending.count('"') % 2:
            continue
        joined.append(pending.strip())
        pending = ""
    if pending.strip():
        joined.append(pending.strip())
    return joined


def block_id(block: FencedBlock) -> str:
    """A block's stable id: its first command's first line (without a trailing `\\`)."""
    first = commands(block)[0].splitlines()[0]
    return first.removesuffix("\\").strip()


Test = TypeVar("Test", bound=Callable[..., object])
# block id → the tests that run (part of) that block; filled by `covers` at import.
COVERED: dict[str, list[str]] = {}


def covers(first_command: str) -> Callable[[Test], Test]:
    """Registers the decorated test as running the README shell block that starts with
    `first_command` (see `block_id`), for the guard test that every block has one."""

    def register(test: Test) -> Test:
        COVERED.setdefault(first_command, []).append(getattr(test, "__name__", repr(test)))
        return test

    return register


def readme_block(first_command: str) -> FencedBlock:
    matches = [block for block in shell_blocks() if block_id(block) == first_command]
    assert len(matches) == 1, (
        f"README.md has {len(matches)} shell blocks starting with {first_command!r}: "
        "if the block changed, update its test in tests/e2e/test_readme_shell.py"
    )
    return matches[0]


@dataclass(frozen=True)
class Ports:
    base: int  # the sandbox's CRM; billing +1, support +2, analytics +3, clinic +4, insurer +5
    ui: int
    api: int
    webhooks: int

    def defaults(self) -> dict[int, int]:
        """The README's default port → the test's."""
        moved = {8700 + offset: self.base + offset for offset in range(6)}
        return moved | {3000: self.ui, 8000: self.api, 8710: self.webhooks}


@dataclass(frozen=True)
class Workdir:
    """A folder that stands for the repository's root: `.venv`, the specs, the dbt project and
    the Makefile linked in, `data/` and `.dagster_home/` its own."""

    path: Path
    ports: Ports

    @classmethod
    def create(cls, path: Path, ports: Ports) -> Workdir:
        for name in LINKED:
            (path / name).symlink_to(PROJECT_ROOT / name)
        (path / ".venv").symlink_to(VENV)
        bi_clients = PROJECT_ROOT / ".venv-bi"
        bi_clients.mkdir(exist_ok=True)  # `make bi-clients` fills it, once for every test
        (path / ".venv-bi").symlink_to(bi_clients)
        shutil.copytree(PROJECT_ROOT / "config", path / "config")
        workdir = cls(path, ports)
        sandbox_env = path / "config" / "sandbox.env"
        sandbox_env.write_text(workdir.rewrite(SANDBOX_ENV_FILE.read_text()))
        return workdir

    def rewrite(self, text: str) -> str:
        """`text` with the README's default ports replaced by the test's, and `sandbox
        tenants` (whose defaults describe `make run`'s ports) told the test's base port."""
        for default, port in self.ports.defaults().items():
            text = re.sub(rf"(?<=127\.0\.0\.1:){default}\b", str(port), text)
        return text.replace("sandbox tenants", f"sandbox tenants --base-port {self.ports.base}")

    @property
    def env(self) -> dict[str, str]:
        """The environment of a new shell: nothing of the platform's set but what `make run`
        sets (DAGSTER_HOME) and where the test's platform is; the virtual environment not on
        PATH, since the README names `.venv/bin/` in its commands."""
        sandbox_values = dotenv_values(self.path / "config" / "sandbox.env")
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in PLATFORM_VARIABLES and name not in sandbox_values
        }
        env["PATH"] = os.pathsep.join(
            entry
            for entry in env.get("PATH", "").split(os.pathsep)
            if Path(entry).resolve() != (VENV / "bin").resolve()
        )
        env["INTEGRATION_PLATFORM_DATA_DIR"] = str(self.path / "data")
        env["DAGSTER_HOME"] = str(self.path / ".dagster_home")
        # Where `make run` puts the vendors (`up` sets these for the processes it starts).
        env |= {
            name: value
            for name, value in sandbox_values.items()
            if value is not None and name.endswith("_BASE_URL")
        }
        return env


@dataclass(frozen=True)
class Ran:
    command: str
    returncode: int
    output: str  # stdout and stderr, interleaved as printed

    def report(self, block: FencedBlock) -> str:
        return (
            f"README.md line {block.line}: exit status {self.returncode}\n"
            f"$ {self.command}\n{self.output[-6000:]}"
        )


def run_shell(workdir: Workdir, script: str, timeout: float, preamble: str = "") -> Ran:
    """`script` (ports rewritten) in bash with `-e -o pipefail` in the working folder; on a
    timeout the whole process group is killed and the output so far reported."""
    command = preamble + workdir.rewrite(script)
    log = workdir.path / "shell.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", command],
            cwd=workdir.path,
            env=workdir.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(process)
            output = log.read_text(errors="replace")
            raise AssertionError(
                f"did not finish within {timeout:.0f} s:\n$ {command}\n{output[-6000:]}"
            ) from None
    return Ran(command, returncode, log.read_text(errors="replace"))


def json_documents(output: str) -> list[dict[str, Any]]:
    """Every JSON object printed, in order: pretty or on one line, several on a line (curl
    prints no newline after a body), log lines included."""
    decoder, position = json.JSONDecoder(), 0
    documents: list[dict[str, Any]] = []
    while (start := output.find("{", position)) >= 0:
        try:
            document, position = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(document, dict) and "level" not in document:  # not a log line
            documents.append(document)
    return documents


def stop_group(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, *, timeout: float = 60
) -> None:
    """Stop a process started in a session of its own, and everything it started.

    The launcher (`integration-platform up`) starts each of its children in a session of its
    own, out of reach of its group: when it does not stop them (killed after `timeout`, or it
    died), they are killed here, so no platform outlives its test and loads the rest of the
    suite.
    """
    try:
        started = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    for child in started:  # after a clean stop, none is left
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], str]
) -> None:
    """Poll `check` until it holds; `alive` returns why waiting is pointless (or "")."""
    deadline = time.monotonic() + timeout
    while not check():
        if problem := alive():
            raise AssertionError(f"{what}: {problem}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(1)
