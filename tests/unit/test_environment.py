"""Where the CLI's variables come from: the environment, then the repository's `.env`, then
config/sandbox.env, as the README's Configuration section says."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from integration_platform import environment
from integration_platform.cli import main


@pytest.fixture
def dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `.env` standing in for the repository root's, with the two CRM variables unset."""
    path = tmp_path / ".env"
    monkeypatch.setattr(environment, "DOTENV_FILE", path)
    # monkeypatch puts the values the session had back afterwards, whatever the CLI sets
    monkeypatch.delenv("CRM_CLIENT_ID", raising=False)
    monkeypatch.delenv("CRM_CLIENT_SECRET", raising=False)
    return path


def tenant_zero(name: str) -> str:
    """The value `sandbox tenants --tenant 0` prints for `name` (tenant 0 reads the variables)."""
    result = CliRunner().invoke(main, ["sandbox", "tenants", "--tenant", "0"])
    assert result.exit_code == 0, result.output
    values = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    return values[name]


def test_cli_reads_a_variable_from_dotenv_when_the_environment_leaves_it_unset(
    dotenv: Path,
) -> None:
    dotenv.write_text("CRM_CLIENT_ID=crm-client-from-dotenv\n")
    assert tenant_zero("CRM_CLIENT_ID") == "crm-client-from-dotenv"


def test_cli_keeps_the_environment_value_when_dotenv_sets_the_variable_too(
    dotenv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv.write_text("CRM_CLIENT_ID=crm-client-from-dotenv\n")
    monkeypatch.setenv("CRM_CLIENT_ID", "crm-client-from-environment")
    assert tenant_zero("CRM_CLIENT_ID") == "crm-client-from-environment"


def test_cli_takes_the_sandbox_value_when_neither_the_environment_nor_dotenv_sets_it(
    dotenv: Path,
) -> None:
    dotenv.write_text("CRM_CLIENT_ID=crm-client-from-dotenv\n")
    sandbox_env = dict(
        line.split("=", 1)
        for line in environment.SANDBOX_ENV_FILE.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert tenant_zero("CRM_CLIENT_SECRET") == sandbox_env["CRM_CLIENT_SECRET"]


def test_cli_runs_on_the_sandbox_values_when_there_is_no_dotenv(dotenv: Path) -> None:
    assert not dotenv.exists()
    assert tenant_zero("CRM_CLIENT_ID") == "sandbox-crm-client"


def test_disagreements_name_only_the_variables_dotenv_sets_to_another_value(
    dotenv: Path,
) -> None:
    dotenv.write_text("A=1\nB=2\nC=3\nEMPTY\n")
    assert environment.dotenv_disagreements({"A": "1", "B": "two", "EMPTY": "x"}) == ["B"]
