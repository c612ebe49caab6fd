"""The `integration-platform api keys` commands an operator runs, and what their console shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration_platform.cli import main
from integration_platform.clients.api_keys import ApiKeys
from integration_platform.clients.database import open_store


def test_a_created_key_is_printed_once_and_authenticates_with_its_scopes(
    api_environment: Path,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", store_url)
    result = CliRunner().invoke(
        main,
        [
            "api",
            "keys",
            "create",
            "--name",
            "bi tool",
            "--scope",
            "data:read",
            "--scope",
            "status:read",
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    principal = ApiKeys(open_store(store_url)).authenticate(token)
    assert principal is not None
    assert principal.scopes == {"data:read", "status:read"}
    assert "shown only now" in result.stderr
    revoked = CliRunner().invoke(main, ["api", "keys", "revoke", principal.key_id])
    assert revoked.exit_code == 0
    assert ApiKeys(open_store(store_url)).authenticate(token) is None


def test_an_unknown_scope_or_client_is_refused_saying_what_exists(
    api_environment: Path,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", store_url)
    bad_scope = CliRunner().invoke(main, ["api", "keys", "create", "--scope", "admin"])
    assert bad_scope.exit_code != 0
    assert "clients:read" in bad_scope.output
    bad_client = CliRunner().invoke(
        main, ["api", "keys", "create", "--all-scopes", "--client", "nobody"]
    )
    assert bad_client.exit_code != 0
    assert "no client 'nobody'" in bad_client.output


def test_keys_create_prints_only_the_token_and_one_line_when_run_on_a_fresh_data_dir(
    tmp_path: Path,
) -> None:
    """The real command, as a newcomer runs it first: the store is created and migrated on
    the way, and nothing of that reaches the console (no Alembic INFO, no warning)."""
    data = tmp_path / "data"
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "INTEGRATION_PLATFORM_SECRET_KEY", "LOG_LEVEL"}
    }
    env["INTEGRATION_PLATFORM_DATA_DIR"] = str(data)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("integration-platform")),
            *("api", "keys", "create", "--name", "bi tool", "--scope", "data:read"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"ipk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n", result.stdout), result.stdout
    key_id = result.stdout.split("_")[1]
    assert result.stderr == (f"key {key_id}: scopes data:read; the token is shown only now\n"), (
        result.stderr
    )
    assert (data / "platform.sqlite").stat().st_mode & 0o777 == 0o600
    principal = ApiKeys(open_store(f"sqlite:///{data / 'platform.sqlite'}")).authenticate(
        result.stdout.strip()
    )
    assert principal is not None
    assert principal.scopes == {"data:read"}
