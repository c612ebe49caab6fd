"""What the command line prints when a command fails: never a secret, never a raw traceback.

Real failures through the installed command: an API on a closed port, and the sandbox refusing
credentials. The secrets sit where error messages quote them (a token URL's query and userinfo,
an endpoint's params, a client id), in variables whose names look like nothing secret, so only
the spec says they are secrets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from integration_platform.environment import PROJECT_ROOT
from integration_platform_sandbox.server import Sandbox
from tests.ports import closed_port

BIN = Path(sys.executable).parent
SECRETS = {
    "SHOP_APP": "shop-app-identifier-31d",  # a client id
    "SHOP_PASSPHRASE": "shop-client-passphrase-8e2",  # a client secret
    "SHOP_PARAM": "shop-query-param-value-77a",  # a token sent as a query parameter
    "SHOP_USERINFO": "shop-userinfo-password-5c0",  # a password in base_url
    "SHOP_VENDOR": "shop-api-key-in-the-query-19f",  # an API key sent in the query
}

OAUTH_SPEC = """
source: shop
kind: rest
base_url: http://deploy:${SHOP_USERINFO}@127.0.0.1:PORT
auth:
  type: oauth2_client_credentials
  token_url: /oauth/token?client_secret=${SHOP_PASSPHRASE}
  client_id: ${SHOP_APP}
  client_secret: ${SHOP_PASSPHRASE}
retry: {max_attempts: 1}
endpoints:
  orders:
    path: /orders
    params: {token: "${SHOP_PARAM}"}
    records: data
    primary_key: id
"""

QUERY_KEY_SPEC = """
source: shop
kind: rest
base_url: BASE
auth: {type: api_key, in: query, name: api_key, value: "${SHOP_VENDOR}"}
retry: {max_attempts: 1}
endpoints:
  customers:
    path: /v1/customers
    records: data
    primary_key: id
"""


def run(tmp_path: Path, spec: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "shop.yaml").write_text(spec)
    env = {
        **os.environ,
        **SECRETS,
        "SOURCES_PATH": str(tmp_path / "specs"),
        "INTEGRATION_PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "DEBUG",
    }
    return subprocess.run(
        [str(BIN / "integration-platform"), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def leaked(result: subprocess.CompletedProcess[str]) -> list[str]:
    output = result.stdout + result.stderr
    return [name for name, value in SECRETS.items() if value in output]


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return line


def test_error_names_the_address_and_the_sandbox_without_any_secret_when_nothing_answers(
    tmp_path: Path,
) -> None:
    port = closed_port()
    result = run(tmp_path, OAUTH_SPEC.replace("PORT", str(port)), "extract", "shop.orders")
    assert result.returncode == 1
    assert error_line(result) == (
        f"Error: shop.orders: shop: nothing answers at http://127.0.0.1:{port} (connection "
        "refused, 1 attempt); if this is the sandbox, is it up? (`make sandbox`)"
    )
    assert not leaked(result), f"{leaked(result)} printed:\n{result.stderr[-3000:]}"


def test_error_hides_the_client_id_when_the_sandbox_refuses_the_client_credentials(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    crm = sandbox.urls["crm"].replace("http://", "http://deploy:${SHOP_USERINFO}@")
    spec = OAUTH_SPEC.replace("http://deploy:${SHOP_USERINFO}@127.0.0.1:PORT", crm)
    result = run(tmp_path, spec, "extract", "shop.orders")
    assert result.returncode == 1
    assert "refused the client credentials: HTTP 401" in error_line(result)
    assert "Check client_id '***'" in error_line(result)
    assert not leaked(result), f"{leaked(result)} printed:\n{result.stderr[-3000:]}"


def test_error_hides_the_api_key_when_the_sandbox_refuses_a_key_sent_in_the_query(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    result = run(
        tmp_path,
        QUERY_KEY_SPEC.replace("BASE", sandbox.urls["billing"]),
        "extract",
        "shop.customers",
    )
    assert result.returncode == 1
    assert "401" in error_line(result)
    assert not leaked(result), f"{leaked(result)} printed:\n{result.stderr[-3000:]}"


def test_unexpected_failure_prints_one_line_and_logs_its_traceback_as_json_when_a_command_breaks(
    tmp_path: Path,
) -> None:
    in_the_way = tmp_path / "out"
    in_the_way.write_text("a file where the output folder should go")
    result = run(
        tmp_path,
        OAUTH_SPEC.replace("PORT", str(closed_port())),
        "extract",
        "shop.orders",
        "--out",
        str(in_the_way / "pages"),
    )
    assert result.returncode == 1
    assert error_line(result).startswith("Error: NotADirectoryError:")
    loose = [
        line
        for line in result.stderr.splitlines()
        if line and not line.startswith(("{", "Error: "))
    ]
    assert not loose, f"lines that are not JSON: {loose[:5]}"
    [failure] = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and '"command_failed"' in line
    ]
    assert failure["level"] == "error" and failure["command"] == "extract"
    assert "Traceback (most recent call last)" in failure["exception"]
    assert "NotADirectoryError" in failure["exception"]
    assert not leaked(result), f"{leaked(result)} printed:\n{result.stderr[-3000:]}"


def test_extract_fails_in_seconds_naming_the_url_when_the_sandbox_is_down(tmp_path: Path) -> None:
    """The shipped billing spec (8 attempts with backoff for what fails) with nothing
    listening at its URL: one quick second try, then one line that says what to do."""
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "integration-platform"), "extract", "billing.invoices"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "BILLING_BASE_URL": url,
            "INTEGRATION_PLATFORM_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 30, f"took {elapsed:.1f} s"  # the retry policy alone took a minute before
    assert error_line(result) == (
        f"Error: billing.invoices: billing: nothing answers at {url} (connection refused, "
        "2 attempts); if this is the sandbox, is it up? (`make sandbox`)"
    )
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    attempts = [line["attempt"] for line in logged if line["event"] == "http_request"]
    assert attempts == [1, 2] and "raise retry.max_attempts" not in result.stderr


def test_materialize_fails_in_seconds_and_keeps_json_off_the_console_when_the_sandbox_is_down(
    tmp_path: Path,
) -> None:
    """Two sources (an API key, OAuth) with nothing listening: each fails after one quick
    second try and no step retry; the console gets progress lines, the log file the JSON."""
    urls = {name: f"http://127.0.0.1:{closed_port()}" for name in ("billing", "crm")}
    result = subprocess.run(
        [
            str(BIN / "integration-platform"),
            "materialize",
            "--partition",
            "2025-03-01",
            "--select",
            'key:"raw/billing/invoices" or key:"raw/crm/contacts"',
        ],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "BILLING_BASE_URL": urls["billing"],
            "CRM_BASE_URL": urls["crm"],
            "INTEGRATION_PLATFORM_DATA_DIR": str(tmp_path / "data"),
            "DAGSTER_HOME": str(tmp_path / "home"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    console = result.stdout + result.stderr
    assert not [line for line in console.splitlines() if line.lstrip().startswith("{")], console
    for source, url in urls.items():
        hint = (
            f"{source}: nothing answers at {url} (connection refused, 2 attempts); if this is "
            "the sandbox, is it up? (`make sandbox`)"
        )
        [failed] = [line for line in result.stdout.splitlines() if "✗" in line and hint in line]
        seconds = float(failed.split("s", 1)[0])  # since the run started
        assert seconds < 30, failed  # a minute per source, with step retries, before
    assert "Exceeded max_retries" not in console and "raise retry.max_attempts" not in console
    logged = [
        json.loads(line)
        for line in (tmp_path / "data" / "logs" / "materialize.log").read_text().splitlines()
        if line.startswith("{")
    ]
    requests = [line["attempt"] for line in logged if line["event"] == "http_request"]
    assert requests == [1, 2], "billing's two tries, and no step retry's"
    unreachable = {
        line["source"]: line["attempts"] for line in logged if line["event"] == "source_unreachable"
    }
    assert unreachable == {"billing": 2, "crm": 2}


def test_extract_says_what_a_target_should_look_like_when_it_is_a_path(tmp_path: Path) -> None:
    result = run(tmp_path, QUERY_KEY_SPEC, "extract", "../crm.contacts")
    assert result.returncode == 2
    assert (
        "'../crm.contacts' is not SOURCE.ENDPOINT: expected two names joined by a dot"
        in result.stderr
    )
    assert "no source" not in result.stderr


def test_materialize_quotes_only_the_start_of_a_client_id_when_it_is_thousands_of_characters(
    tmp_path: Path,
) -> None:
    result = run(tmp_path, QUERY_KEY_SPEC, "materialize", "--client", "x" * 5000)
    assert result.returncode == 2
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert "is not a client id: 3 to 40 lowercase letters" in error
    assert len(error) < 300, error
