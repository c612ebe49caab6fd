"""The sandbox in a process of its own, as `make run` starts it, for end-to-end tests."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.e2e.test_platform_commands import free_port_block

BIN = Path(sys.executable).parent


@contextlib.contextmanager
def sandbox_process(log: Path, *arguments: str) -> Iterator[int]:
    """`integration-platform sandbox up ARGUMENTS` on a free block of ports; yields the base
    port (CRM; billing is +1, support +2, analytics +3) once billing answers."""
    base = free_port_block(4)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BIN / "integration-platform"),
                "sandbox",
                "up",
                "--base-port",
                str(base),
                *arguments,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = f"http://127.0.0.1:{base + 1}/_sandbox/health"
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, f"the sandbox exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the sandbox did not start within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
