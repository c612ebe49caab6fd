"""Logs are structured JSON and never carry a secret, whatever the log level."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from integration_platform.environment import PROJECT_ROOT, SANDBOX_ENV_FILE
from integration_platform.logs import is_secret_variable
from tests.e2e.demo_run import DemoRun
from tests.echo_api import ECHO_SECRETS, ECHO_SPEC, EchoAPI, leaked_forms

BIN = Path(sys.executable).parent


@pytest.mark.timeout(900)  # the session's `make demo` (demo_run): ~70 s alone, 5+ min crowded
def test_no_configured_secret_appears_in_any_log_line_when_a_full_run_logs_at_debug(
    demo_run: DemoRun,
) -> None:
    """The whole job (the session's `make demo`, tests/e2e/demo_run.py) at LOG_LEVEL=DEBUG."""
    secrets = {
        name: value
        for name, value in dotenv_values(SANDBOX_ENV_FILE).items()
        if value and is_secret_variable(name)
    }
    assert len(secrets) >= 6, "the sandbox's credentials should all count as secrets"
    assert demo_run.returncode == 0, demo_run.report()
    # The console, and the file the runs' own output (dbt's and the log lines logged inside
    # the runs included) went to.
    run_log = (demo_run.folder / "logs" / "demo.log").read_text()
    output = demo_run.stdout + demo_run.stderr + run_log
    leaked = [name for name, value in secrets.items() if value in output]
    assert not leaked, f"secret values of {leaked} appear in the logs"

    assert '"http_request"' not in demo_run.stderr, "the runs' lines belong in demo.log"
    lines = [json.loads(line) for line in run_log.splitlines() if line.startswith("{")]
    assert any(line.get("level") == "debug" for line in lines), "the run did not log at DEBUG"
    requests = [line for line in lines if line.get("event") == "http_request"]
    assert requests, "every HTTP attempt should be logged"
    for field in ("request_id", "source", "endpoint", "attempt", "status", "latency_ms", "url"):
        assert all(field in line for line in requests), f"{field} missing from request logs"
    assert {line["source"] for line in requests} == {"crm", "billing", "support", "analytics"}
    finished = {
        (line["source"], line["endpoint"])
        for line in lines
        if line.get("event") == "extraction_finished"
    }
    assert len(finished) == 10, finished  # every endpoint of the four sources


def test_no_form_of_a_secret_is_printed_or_logged_when_an_api_echoes_the_request_back(
    tmp_path: Path,
) -> None:
    """The API refuses and quotes the request: its URL-encoded query, the path, the Basic
    header. The one error line and every JSON log line show none of it, at DEBUG."""
    (tmp_path / "specs").mkdir()
    with EchoAPI() as api:
        (tmp_path / "specs" / "echo.yaml").write_text(ECHO_SPEC.replace("BASE", api.url))
        result = subprocess.run(
            [str(BIN / "integration-platform"), "extract", "echo.customers"],
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                **ECHO_SECRETS,
                "SOURCES_PATH": str(tmp_path / "specs"),
                "INTEGRATION_PLATFORM_DATA_DIR": str(tmp_path / "data"),
                "LOG_LEVEL": "DEBUG",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert api.requests, "the request should have reached the API"
    assert leaked_forms(api.requests[0]), "the API should have seen the secrets, encoded"
    assert result.returncode == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert "HTTP 401" in error and "/v1/tenants/***/customers" in error, error
    assert "Authorization: Basic ***" in error, error
    assert not leaked_forms(result.stdout + result.stderr), result.stderr[-3000:]
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    [request] = [line for line in logged if line.get("event") == "http_request"]
    assert request["url"].startswith(f"{api.url}/v1/tenants/***/customers?"), request["url"]
