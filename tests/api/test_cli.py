"""The `integration-platform api keys` commands an operator runs."""

from __future__ import annotations

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
