"""Secrets are hidden in every form they travel in, and the variables that hold them are known
by their names: what a log line or an error message can never show."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from integration_platform import logs
from integration_platform.redaction import Scrubber, encoded_forms, redact_url
from integration_platform.specs.loader import load_spec
from integration_platform.specs.secrets import secret_values

# What an AWS secret access key looks like: '/' and '+' change when URL-encoded.
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY+EXAMPLEKEY"


@pytest.mark.parametrize("username", ["u", "us", "usr", "a-longer-user"])
def test_every_encoding_of_a_secret_is_masked_when_text_quotes_it(username: str) -> None:
    basic = base64.b64encode(f"{username}:{AWS_SECRET}".encode()).decode()
    forms = [
        AWS_SECRET,
        quote(AWS_SECRET, safe=""),
        quote(AWS_SECRET),
        quote_plus(AWS_SECRET),
        re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote(AWS_SECRET, safe="")),
        basic,  # an HTTP Basic header, whichever user name goes before the secret
        base64.urlsafe_b64encode(AWS_SECRET.encode()).decode(),
    ]
    scrubbed = Scrubber([AWS_SECRET])(" | ".join(forms))
    assert not [form for form in forms if form in scrubbed], scrubbed
    # Of the secret inside the base64, at most two characters at each end are left (mixed
    # with the user name's bits): never a run that decodes to part of it.
    assert base64.b64encode(AWS_SECRET.encode()[3:-3]).decode() not in scrubbed


def test_basic_headers_and_base_url_passwords_count_as_secrets_when_a_spec_resolves(
    tmp_path: Path,
) -> None:
    spec_file = tmp_path / "shop.yaml"
    spec_file.write_text(
        "source: shop\nkind: rest\nbase_url: http://deploy:${URL_PASS}@127.0.0.1:9\n"
        'auth: {type: basic, username: "${USER}", password: "${PASS}"}\n'
        "endpoints:\n  orders: {path: /orders, primary_key: id}\n"
    )
    env = {"URL_PASS": "url-password-1", "USER": "shop-user", "PASS": "basic-password-2"}
    values = secret_values(load_spec(spec_file, env=env))
    assert "url-password-1" in values and "basic-password-2" in values
    assert base64.b64encode(b"shop-user:basic-password-2").decode() in values
    assert base64.b64encode(b"deploy:url-password-1").decode() in values


def test_query_values_are_masked_and_the_rest_of_the_url_kept_as_written_when_redacted() -> None:
    url = "https://deploy:pw@api.test/v1/x?page=2&API_KEY=a%2Bb&q=a+b%20c&token=t#top"
    assert redact_url(url) == "https://api.test/v1/x?page=2&API_KEY=***&q=a+b%20c&token=***#top"


@pytest.mark.parametrize(
    "name",
    [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "GCP_CRED",
        "SNOWFLAKE_CREDS",
        "DATABRICKS_CREDENTIALS",
        "AZURE_CLIENT_SECRET",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_CONNECTION_STRING",
        "GOOGLE_API_KEY",
        "INTEGRATION_PLATFORM_SECRET_KEY",
        "MYSQL_PWD",
        "PGPASSWORD",
        "CRM_CLIENT_SECRET",
    ],
)
def test_variable_holds_a_secret_when_its_name_says_so(name: str) -> None:
    assert logs.is_secret_variable(name)


@pytest.mark.parametrize(
    "name", ["PWD", "OLDPWD", "CRM_BASE_URL", "CRM_TOKEN_URL", "SECRET_KEY_FILE", "KEYBOARD"]
)
def test_variable_is_left_readable_when_it_only_points_at_or_describes_a_secret(
    name: str,
) -> None:
    assert not logs.is_secret_variable(name)


def test_json_lines_go_where_stderr_points_now_when_a_command_redirects_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run's output goes to its log file: so do the log lines logged inside it, and a
    URL-encoded secret from the environment shows in neither."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setattr(logs, "_secrets", Scrubber())
    console, log_file = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(console):
            logs.configure_logging("INFO")
            log = logs.get_logger("integration_platform.test")
            log.warning("before_the_run")
            with contextlib.redirect_stderr(log_file):
                log.warning("inside_the_run", url=f"https://s3.test/b?x={quote(AWS_SECRET)}")
            log.warning("after_the_run")
    finally:
        logs.configure_logging()  # back to this process's stderr
    assert [json.loads(line)["event"] for line in console.getvalue().splitlines()] == [
        "before_the_run",
        "after_the_run",
    ]
    [inside] = [json.loads(line) for line in log_file.getvalue().splitlines()]
    assert inside["event"] == "inside_the_run" and inside["url"] == "https://s3.test/b?x=***"


def test_a_secret_with_control_characters_is_masked_without_error_when_registered() -> None:
    forms = encoded_forms("abc\x01defghijklmnop")
    assert "abc\x01defghijklmnop" in forms
    assert "abc%01defghijklmnop" in forms
