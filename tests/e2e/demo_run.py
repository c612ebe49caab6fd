"""One `make demo` whose output several end-to-end tests read (the session's `demo_run`,
tests/e2e/conftest.py): the demo's own test, the marts against the sandbox, the logs'
redaction. Each run of the whole job costs minutes on a 2-core machine; they share this one."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from integration_platform.environment import PROJECT_ROOT

# ~70 s alone; five minutes and more on a crowded 2-core machine. The tests that read the run
# allow 900 s, since whichever asks first waits for it.
DEMO_SECONDS = 840


@dataclass(frozen=True)
class DemoRun:
    """What one `make demo` left: its exit status, its console, and its folder (data/demo/:
    the published warehouse, the Dagster instance with the runs' events, logs/demo.log)."""

    returncode: int
    stdout: str
    stderr: str
    folder: Path

    def report(self) -> str:
        tail = f"{self.stdout[-3000:]}\n{self.stderr[-3000:]}"
        return f"`make demo` exited {self.returncode}:\n{tail}"


def run_make_demo(data_dir: Path) -> DemoRun:
    """`make demo` itself, at its defaults, in this test's virtual environment (which `make
    test` installed), with its data under `data_dir`. At LOG_LEVEL=DEBUG, the most the logs
    ever say, for the test that no secret reaches them: the console has to stay as quiet as at
    the default level, since the log lines go to data/demo/logs/demo.log either way."""
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", f"VENV={sys.prefix}"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LOG_LEVEL": "DEBUG", "INTEGRATION_PLATFORM_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=DEMO_SECONDS,
    )
    return DemoRun(result.returncode, result.stdout, result.stderr, data_dir / "demo")
