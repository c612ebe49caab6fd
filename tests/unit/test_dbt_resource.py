"""The dbt resource knows the venv's dbt version without running `dbt --version` (about 3 s of
CPU at the start of every build), and still asks any other dbt executable."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import pytest
from dagster_dbt.core import resource as dagster_dbt_resource

from integration_platform.transform.dbt_assets import VenvDbtCliResource, dbt_executable

PROJECT = Path(__file__).parents[2] / "dbt_project"


def test_the_venvs_dbt_version_comes_from_the_installed_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_subprocess(*args: object, **kwargs: object) -> bytes:
        raise AssertionError(f"ran {args!r}: the version was asked of dbt")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", no_subprocess)
    dbt = VenvDbtCliResource(project_dir=str(PROJECT), dbt_executable=dbt_executable())
    assert str(dbt._cli_version) == importlib.metadata.version("dbt-core")


def test_another_dbt_executable_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "dbt"
    shutil.copy(dbt_executable(), other)
    asked: list[object] = []

    def answer(command: list[str], *args: object, **kwargs: object) -> bytes:
        asked.append(command)
        return b"Core:\n  - installed: 1.9.4\n"

    monkeypatch.setattr(dagster_dbt_resource, "check_output", answer)
    dbt = VenvDbtCliResource(project_dir=str(PROJECT), dbt_executable=str(other))
    assert str(dbt._cli_version) == "1.9.4"
    assert asked == [[str(other), "--version"]]
