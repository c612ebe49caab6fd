"""The dbt resource knows the venv's dbt version without running `dbt --version` (about 3 s of
CPU at the start of every build), and still asks any other dbt executable; a build leaves only
the newest builds' target folders behind, and starts from the last partial parse of its
warehouse."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

import pytest
from dagster_dbt.core import resource as dagster_dbt_resource

from integration_platform.transform.dbt_assets import (
    DBT_BUILD,
    PARTIAL_PARSE,
    VenvDbtCliResource,
    build_target_path,
    dbt_executable,
    keep_partial_parse,
    partial_parse_cache,
    prune_build_targets,
    reuse_partial_parse,
)

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


def test_a_build_keeps_the_newest_target_folders_and_removes_the_rest_when_it_ends(
    tmp_path: Path,
) -> None:
    target = tmp_path / "target"
    folders = []
    for age in range(14):  # oldest first
        folder = target / f"{DBT_BUILD}-run{age:04d}-abc1234"
        (folder / "compiled").mkdir(parents=True)
        (folder / "dbt.log").write_text("{}\n")
        os.utime(folder, (1_000_000 + age, 1_000_000 + age))
        folders.append(folder)
    (target / "manifest.json").write_text("{}")  # `prepare`'s, beside the builds' folders
    (target / "partial_parse.msgpack").write_text("")
    current = folders[3]  # the build that ends now, whatever its folder's time

    removed = prune_build_targets(current, keep=5)

    left = sorted(p.name for p in target.iterdir())
    assert left == sorted(
        [current.name, *(f.name for f in folders[-4:]), "manifest.json", "partial_parse.msgpack"]
    )
    assert sorted(removed) == sorted(f for f in folders if f.name not in left)


def test_a_build_starts_from_the_partial_parse_its_warehouse_last_kept(tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    one, other = tmp_path / "a" / "warehouse.duckdb", tmp_path / "b" / "warehouse.duckdb"
    first = build_target_path(project, "run00001")
    assert first.parent == project / "target" and first.name.startswith(f"{DBT_BUILD}-run0000-")
    cache = partial_parse_cache(project, one)
    assert cache != partial_parse_cache(project, other)
    assert cache == partial_parse_cache(project, tmp_path / "a" / ".." / "a" / "warehouse.duckdb")

    assert not reuse_partial_parse(cache, first)  # the warehouse's first build parses it all
    assert not keep_partial_parse(first, cache)  # dbt wrote nothing (it failed to start)
    first.mkdir(parents=True)
    (first / PARTIAL_PARSE).write_bytes(b"parsed for a")
    assert keep_partial_parse(first, cache)

    second = build_target_path(project, "run00002")
    assert reuse_partial_parse(cache, second)
    assert (second / PARTIAL_PARSE).read_bytes() == b"parsed for a"
    (second / PARTIAL_PARSE).write_bytes(b"parsed again for a")
    assert keep_partial_parse(second, cache)
    assert cache.read_bytes() == b"parsed again for a"
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]  # no temporary left
    assert not reuse_partial_parse(partial_parse_cache(project, other), tmp_path / "t")
