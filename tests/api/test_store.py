"""The client store without HTTP: what a Dagster run reads, key rotation, the local key file,
migrations, and the demo client and admin key `make run` prepares."""

from __future__ import annotations

import json
import os
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from dagster import build_resources
from sqlalchemy import inspect

from integration_platform.api.bootstrap import ensure_admin_key_file, ensure_demo_client
from integration_platform.assets.resources import api_resource
from integration_platform.clients.api_keys import ApiKeys
from integration_platform.clients.credentials import (
    MissingCredentialsError,
    StoredCredentials,
    credentials_for,
)
from integration_platform.clients.crypto import (
    CredentialCipher,
    SecretKeyError,
    load_cipher,
    local_key_file,
)
from integration_platform.clients.database import create_store_engine, open_store
from integration_platform.clients.registry import ClientRegistry
from integration_platform.logs import configure_logging
from integration_platform.specs.loader import load_specs
from integration_platform.specs.models import OAuth2ClientCredentials
from tests.api.test_clients import CRM


@pytest.fixture
def registry(
    api_environment: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> ClientRegistry:
    monkeypatch.setenv("DATABASE_URL", store_url)
    return ClientRegistry.open_default()


def test_a_run_gets_the_clients_stored_credentials_when_it_asks(
    registry: ClientRegistry,
) -> None:
    registry.create("acme", "Acme", {"crm": CRM})
    assert credentials_for("acme", "crm") == CRM


def test_the_demo_client_gets_the_environment_when_nothing_is_stored(
    registry: ClientRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_CLIENT_ID", "env-client")
    monkeypatch.setenv("CRM_CLIENT_SECRET", "env-secret-1234")
    monkeypatch.setenv("CRM_BASE_URL", "http://env")
    assert ensure_demo_client(registry) is True
    assert ensure_demo_client(registry) is False  # idempotent: make run starts again
    assert credentials_for("demo", "crm") == {
        "CRM_BASE_URL": "http://env",
        "CRM_CLIENT_ID": "env-client",
        "CRM_CLIENT_SECRET": "env-secret-1234",
    }


def test_a_run_is_refused_credentials_the_client_does_not_have(
    registry: ClientRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLING_API_KEY", "the-operators-own-key")
    registry.create("acme", "Acme", {"crm": CRM})
    with pytest.raises(MissingCredentialsError, match="no credentials for billing"):
        credentials_for("acme", "billing")  # never the operator's environment
    registry.deactivate("acme")
    with pytest.raises(MissingCredentialsError, match="no active client"):
        credentials_for("acme", "crm")
    with pytest.raises(MissingCredentialsError):
        credentials_for("nobody", "crm")


def test_a_sources_resource_resolves_a_clients_spec_from_the_store_it_is_given(
    registry: ClientRegistry,
) -> None:
    registry.create("acme", "Acme", {"crm": CRM})
    resource = api_resource(load_specs()["crm"], credentials=StoredCredentials())
    # As a run gets it: Dagster builds the resource anew from its config.
    with build_resources({"api": resource}) as resources:
        spec = resources.api.spec("acme")
        assert spec.base_url == CRM["CRM_BASE_URL"]
        assert isinstance(spec.auth, OAuth2ClientCredentials)
        assert spec.auth.client_id == CRM["CRM_CLIENT_ID"]
        with pytest.raises(MissingCredentialsError, match="no active client 'nobody'"):
            resources.api.spec("nobody")


def test_a_sources_resource_without_a_store_refuses_every_client_but_the_demo_client(
    registry: ClientRegistry,
) -> None:
    registry.create("acme", "Acme", {"crm": CRM})
    with (
        build_resources({"api": api_resource(load_specs()["crm"])}) as resources,
        pytest.raises(MissingCredentialsError, match="demo client only, not 'acme'"),
    ):
        resources.api.spec("acme")


def test_old_credentials_still_open_after_the_key_is_rotated(
    api_environment: Path,
    store_url: str,
) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sessions = open_store(store_url)
    ClientRegistry(sessions, CredentialCipher([old])).create("acme", "Acme", {"crm": CRM})
    rotated = ClientRegistry(sessions, CredentialCipher([new, old]))
    assert rotated.decrypted_credentials("acme", "crm") == CRM
    with pytest.raises(SecretKeyError, match="Put the old key after the new one"):
        ClientRegistry(sessions, CredentialCipher([new])).decrypted_credentials("acme", "crm")


def test_a_malformed_key_is_refused_with_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTEGRATION_PLATFORM_SECRET_KEY", "not-a-fernet-key")
    with pytest.raises(SecretKeyError, match=r"Fernet\.generate_key"):
        load_cipher()


def test_a_local_key_is_made_once_with_mode_0600_and_one_info_line_when_none_is_set(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTEGRATION_PLATFORM_SECRET_KEY", raising=False)
    stream = StringIO()
    configure_logging("INFO", stream=stream)
    try:
        first = load_cipher(tmp_path)
        token = first.encrypt({"A": "b"})
        second = load_cipher(tmp_path)
    finally:
        configure_logging()
    key_file = tmp_path / "secret.key"
    assert local_key_file(tmp_path) == key_file
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert second.decrypt(token) == {"A": "b"}
    # Expected on a first start: said once, in the log, and not as a warning.
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("local_secret_key_created", "info")
    ]
    assert lines[0]["path"] == str(key_file)
    assert key_file.read_text().strip() not in stream.getvalue()
    monkeypatch.setenv("INTEGRATION_PLATFORM_SECRET_KEY", Fernet.generate_key().decode())
    assert local_key_file(tmp_path) is None


def test_the_sqlite_store_and_its_wal_files_are_private_when_created(tmp_path: Path) -> None:
    path = tmp_path / "data" / "platform.sqlite"
    previous = os.umask(0o022)  # what most shells have: SQLite alone would make 0644 files
    try:
        sessions = open_store(f"sqlite:///{path}")
        try:
            ApiKeys(sessions).create("reader", ["data:read"])  # a write: -wal and -shm exist
            modes = {file.name: file.stat().st_mode & 0o777 for file in path.parent.iterdir()}
        finally:
            sessions.kw["bind"].dispose()
    finally:
        os.umask(previous)
    assert modes == {
        "platform.sqlite": 0o600,
        "platform.sqlite-wal": 0o600,
        "platform.sqlite-shm": 0o600,
    }


def test_migrations_create_every_table_and_run_again_harmlessly(store_url: str) -> None:
    engine = create_store_engine(store_url)
    open_store(store_url)
    open_store(store_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"clients", "client_credentials", "api_keys", "syncs", "alembic_version"} <= tables


def test_the_admin_key_file_is_written_once_and_authenticates_with_every_scope(
    api_environment: Path,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTEGRATION_PLATFORM_ADMIN_KEY")
    keys = ApiKeys(open_store(store_url))
    path = ensure_admin_key_file(keys, api_environment)
    assert path is not None
    assert ensure_admin_key_file(keys, api_environment) == path
    assert path.stat().st_mode & 0o777 == 0o600
    principal = keys.authenticate(path.read_text().strip())
    assert principal is not None
    assert principal.client_id is None
    assert {"clients:write", "syncs:write", "data:read"} <= principal.scopes
    monkeypatch.setenv("INTEGRATION_PLATFORM_ADMIN_KEY", "x" * 30)
    assert ensure_admin_key_file(keys, api_environment / "other") is None
    assert not (api_environment / "other").exists()
