"""`dg check defs` and `dg list defs` as a user runs them: the venv's `dg`, from the repository
root, in a fresh Dagster home. They load the definitions through the dg project's defs folder
(pyproject.toml's [tool.dg]), the source specs through their Component. (`dg check defs`
passing is the README's block: tests/e2e/test_readme_shell.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from integration_platform.automation.reconciliation import build_reconciliation
from integration_platform.automation.schedules import source_automation
from integration_platform.environment import PROJECT_ROOT, dbt_project_dir
from integration_platform.specs.loader import load_specs
from integration_platform.transform.dbt_assets import IntegrationDbtTranslator

DG = Path(sys.executable).parent / "dg"
SENSORS = ("automation_sensor", "client_lag_sensor", "webhook_inbox_sensor", "alert_on_run_failure")


def run_dg(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Wide enough that no key is cut in dg's tables.
    environ = {**os.environ, "DAGSTER_HOME": str(home), "COLUMNS": "400", "NO_COLOR": "1", **env}
    return subprocess.run(
        [str(DG), *args],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_dg_check_defs_fails_naming_the_spec_when_a_source_spec_is_invalid(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("source: broken\nkind: rest\nbase_url: http://127.0.0.1:9\nendpoints: 12\n")
    result = run_dg(tmp_path, "check", "defs", SOURCES_PATH=str(spec))
    assert result.returncode != 0
    assert f"{spec}: " in result.stdout + result.stderr  # the SpecError, naming file and key
    assert "endpoints" in result.stdout + result.stderr


def test_dg_list_defs_shows_each_sources_assets_the_dbt_models_schedules_and_sensors(
    tmp_path: Path,
) -> None:
    result = run_dg(tmp_path, "list", "defs")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = result.stdout
    specs = load_specs()
    raw = [
        f"raw/{source}/{endpoint}" for source, spec in specs.items() for endpoint in spec.endpoints
    ]
    assert raw
    missing = [key for key in raw if key not in listed]
    missing += [f"{key}:schema_drift" for key in raw if f"{key}:schema_drift" not in listed]
    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    translator = IntegrationDbtTranslator()
    models = [
        translator.get_asset_key(node).to_user_string()
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    ]
    assert "marts/dim_customers" in models
    missing += [key for key in models if key not in listed]
    schedules = source_automation(specs)[1]
    schedules += build_reconciliation(specs)[1]
    assert schedules
    missing += [s.name for s in schedules if s.name not in listed]
    missing += [name for name in SENSORS if name not in listed]
    assert not missing, f"`dg list defs` does not show {missing}:\n{listed}"


def test_loading_the_definitions_imports_no_package_only_a_run_step_needs() -> None:
    """Every run's process, the code server and each command load the definitions: the client
    store (SQLAlchemy, Alembic) and polars load in the step that needs them, not there."""
    only_in_steps = ("polars", "sqlalchemy", "alembic", "cryptography")
    script = (
        "import sys\n"
        "from integration_platform.definitions import defs\n"
        "defs()\n"
        f"print(sorted(m for m in {only_in_steps!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
