"""`integration-platform materialize` refuses days its daily assets have no partition for (before
their first day, or not ended yet) in one line, before any run exists in the instance."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance

from integration_platform.environment import PROJECT_ROOT

BIN = Path(sys.executable).parent


def materialize(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "INTEGRATION_PLATFORM_DATA_DIR": str(tmp_path / "data"),
    }
    return subprocess.run(
        [str(BIN / "integration-platform"), "materialize", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def runs_in(tmp_path: Path) -> int:
    home = tmp_path / "dagster_home"
    if not (home / "dagster.yaml").exists():
        return 0
    with DagsterInstance.from_config(str(home)) as instance:
        return int(instance.get_runs_count())


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error: ")]


@pytest.mark.timeout(400)
def test_materialize_refuses_in_one_line_without_a_run_when_days_are_before_the_partitions(
    tmp_path: Path,
) -> None:
    result = materialize(tmp_path, "--partition-range", "2024-12-30...2025-01-02")
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = error_lines(result)
    assert "2024-12-30 is before the first day of" in line
    assert "(2025-01-01)" in line
    assert "Traceback" not in result.stderr
    assert runs_in(tmp_path) == 0


@pytest.mark.timeout(400)
def test_materialize_refuses_in_one_line_without_a_run_when_a_day_has_not_ended(
    tmp_path: Path,
) -> None:
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    result = materialize(
        tmp_path, "--select", 'key:"raw/crm/contacts"', "--partition", today.isoformat()
    )
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = error_lines(result)
    assert line == (
        f"Error: {today} has not ended yet: the last complete (UTC) day of raw/crm/contacts "
        f"is {yesterday}"
    )
    assert runs_in(tmp_path) == 0
