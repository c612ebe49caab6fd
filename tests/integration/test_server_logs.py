"""What a served receiver writes on stderr: JSON lines only, tracebacks included, no secret.

Real servers in subprocesses, so stderr is exactly what an operator's log collector gets.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from integration_platform.environment import PROJECT_ROOT
from tests.integration.test_webhooks import BILLING_SPEC, ROUTE, invoice_event, signed

# Named like nothing secret: only the spec says it is one.
HOOK_SIGNING = "whsec_" + base64.b64encode(b"json-logs-test-webhook-secret").decode()

BROKEN_RECEIVER = """
import os, sys
from pathlib import Path
from integration_platform import environment
from integration_platform.specs.loader import load_spec
from integration_platform.webhooks.app import create_receiver_app
from integration_platform.webhooks.server import ReceiverServer

environment.load_sandbox_env()
app = create_receiver_app({"billing": load_spec(Path(sys.argv[1]), env=os.environ)},
                          Path(sys.argv[2]))

async def broken(item):
    raise RuntimeError("the inbox broke while holding " + os.environ["HOOK_SIGNING"])

app.state.writer.write = broken  # every accepted event now fails inside the handler
server = ReceiverServer(app, port=0)
print(server.url, flush=True)
server.run()
"""


def json_lines(stderr: str, allowed_plain: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every stderr line parsed; fails on any line that is not JSON (bar `allowed_plain`)."""
    lines = []
    for line in stderr.splitlines():
        if not line.strip() or line in allowed_plain:
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"stderr line is not JSON: {line[:300]!r}") from None
    return lines


def wait_until_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/_health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the receiver did not answer within 30 s")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return stderr


def test_handler_traceback_is_one_redacted_json_line_when_a_request_breaks_the_receiver(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "billing.yaml"
    spec.write_text(
        BILLING_SPEC.read_text().replace("${BILLING_WEBHOOK_SECRET}", "${HOOK_SIGNING}")
    )
    process = subprocess.Popen(
        [sys.executable, "-c", BROKEN_RECEIVER, str(spec), str(tmp_path / "inbox.sqlite")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HOOK_SIGNING": HOOK_SIGNING},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        wait_until_healthy(url)
        body = invoice_event()
        response = httpx.post(
            url + ROUTE, content=body, headers=signed(HOOK_SIGNING, body), timeout=10
        )
        assert response.status_code == 500
    finally:
        stderr = stop(process)
    assert HOOK_SIGNING not in stderr
    [crash] = [line for line in json_lines(stderr) if "exception" in line]
    assert crash["level"] == "error" and crash["logger"] == "uvicorn.error"
    assert "Exception in ASGI application" in crash["event"]
    assert "Traceback (most recent call last)" in crash["exception"]
    assert "RuntimeError: the inbox broke while holding ***" in crash["exception"]


def test_uvicorn_and_cut_off_lines_are_json_when_the_served_receiver_meets_bad_clients(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integration_platform.cli",
            "webhooks",
            "serve",
            "--port",
            "0",
            "--inbox",
            str(tmp_path / "inbox.sqlite"),
            "--header-timeout",
            "0.5",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        wait_until_healthy(url)
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as garbage:
            garbage.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
            assert garbage.recv(1024).startswith(b"HTTP/1.1 400 ")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(b"POST " + ROUTE.encode() + b" HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert slow.recv(1024).startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - started < 3.0
    finally:
        stderr = stop(process)
    lines = json_lines(stderr, allowed_plain=("Ctrl-C to stop.",))
    events = {line["event"]: line for line in lines}
    assert events["Invalid HTTP request received."]["logger"] == "uvicorn.error"
    cut = events["slow_client_cut_off"]
    assert (cut["phase"], cut["limit_seconds"], cut["level"]) == ("headers", 0.5, "warning")
