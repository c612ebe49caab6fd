"""Each source needs only its own variables: extracting, streaming, receiving webhooks or
materializing one source works while another spec's variables are unset, and the source whose
variable is missing fails naming the variable, its spec file and config/sandbox.env.

The other spec (`shop`) references variables that config/sandbox.env does not hold either, so
they stay unset even after the CLI fills what it can from that file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from integration_platform.cli import main
from integration_platform.specs.loader import load_specs
from integration_platform.webhooks.app import webhook_specs
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from tests.integration.test_raw_layer import SOURCES, Platform, failure_messages

SHOP = """
source: shop
kind: rest
base_url: ${SHOP_URL}
auth: {type: api_key, in: header, name: X-Key, value: "${SHOP_KEY}"}
endpoints:
  orders:
    path: /orders
    records: data
    primary_key: id
"""


@pytest.fixture
def specs_with_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> Path:
    """The shipped specs plus `shop`, whose variables are unset; sources aimed at the sandbox."""
    folder = tmp_path / "sources"
    shutil.copytree(SOURCES, folder)
    (folder / "shop.yaml").write_text(SHOP)
    monkeypatch.setenv("SOURCES_PATH", str(folder))
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WAREHOUSE_PATH", raising=False)
    for variable in ("SHOP_URL", "SHOP_KEY"):
        monkeypatch.delenv(variable, raising=False)
    for vendor, url in sandbox.urls.items():
        monkeypatch.setenv(VENDOR_URL_VARIABLES[vendor], url)
    return folder


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_names_the_variable_the_file_and_the_sandbox_env(message: str, spec: Path) -> None:
    assert "SHOP_URL is not set" in message, message
    assert str(spec.resolve()) in message or str(spec) in message, message
    assert "config/sandbox.env" in message, message


def test_extract_succeeds_when_another_spec_has_unset_variables(specs_with_shop: Path) -> None:
    result = cli("extract", "crm.companies")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["records"] > 0


def test_extract_fails_naming_the_variable_the_spec_file_and_sandbox_env_when_its_own_is_unset(
    specs_with_shop: Path,
) -> None:
    result = cli("extract", "shop.orders")
    assert result.exit_code == 1
    assert_names_the_variable_the_file_and_the_sandbox_env(
        result.output, specs_with_shop / "shop.yaml"
    )


def test_stream_consumer_runs_when_another_spec_has_unset_variables(
    specs_with_shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The consumer reports its loads to this instance, not to the one `make` points at.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    result = cli("streams", "consume", "--max-events", "3", "--publish-every", "3600")
    assert result.exit_code == 0, result.output
    [stats] = json.loads(result.stdout[result.stdout.index("[") :])
    assert stats["events"] >= 3


def test_webhook_receiver_resolves_only_the_specs_with_webhooks_when_others_lack_variables(
    specs_with_shop: Path,
) -> None:
    assert list(
        webhook_specs(
            {
                "BILLING_BASE_URL": "http://127.0.0.1:9",
                "BILLING_API_KEY": "key-123456",
                "BILLING_WEBHOOK_SECRET": "whsec_c2VjcmV0LXNlY3JldA==",
            }
        )
    ) == ["billing"]


def test_raw_asset_of_one_source_materializes_when_another_spec_has_unset_variables(
    specs_with_shop: Path, tmp_path: Path
) -> None:
    platform = Platform(tmp_path / "dagster", load_specs())
    result = platform.materialize([platform.asset("crm", "companies")])
    assert result.success, failure_messages(result)
    assert platform.query("SELECT count(*) FROM raw.crm__companies")[0][0] > 0


def test_raw_asset_fails_naming_the_variable_the_spec_file_and_sandbox_env_when_its_own_is_unset(
    specs_with_shop: Path, tmp_path: Path
) -> None:
    platform = Platform(tmp_path / "dagster", load_specs())
    result = platform.materialize([platform.asset("shop", "orders")])
    assert not result.success
    assert_names_the_variable_the_file_and_the_sandbox_env(
        failure_messages(result), specs_with_shop / "shop.yaml"
    )
