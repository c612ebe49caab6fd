"""The platform's wheel, built as a release would build it: it holds no module of the sandbox
(a package of its own, sandbox/), and its modules import where the sandbox is not installed.

Costs, on a busy 2-core machine: building about a second with uv's cache (hatchling comes from
PyPI or the cache), importing every module of the wheel in a fresh interpreter about 10 s
(Dagster, dbt), the four CLI runs without the sandbox about 8 s.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from integration_platform.cli.sandbox_loading import SANDBOX_COMMANDS
from integration_platform.environment import PROJECT_ROOT
from integration_platform.sandbox_dependency import SANDBOX_PACKAGE

# Python scripts that the wheel ships but nothing imports: Alembic runs env.py itself, and
# `python -m integration_platform.cli` runs __main__.py.
NOT_IMPORTED = {"integration_platform.clients.migrations.env", "integration_platform.cli.__main__"}
# The command modules the CLI loads on demand, and only with the sandbox (sandbox_loading.py).
ON_DEMAND = {module for module, _attribute in SANDBOX_COMMANDS.values()}
# What the package finds beside itself in a clone (the definitions load the specs and the dbt
# project when imported); the wheel ships neither, so the test links them in.
PROJECT_FOLDERS = ("sources", "dbt_project", "config")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = Path(sys.executable).with_name("uv")
    command = str(uv) if uv.exists() else shutil.which("uv")
    assert command, "uv is not installed (make install puts it in .venv/bin)"
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [command, "build", "--wheel", "--quiet", "--out-dir", str(out), str(PROJECT_ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("integration_platform-*.whl")
    return built


@pytest.fixture(scope="module")
def unpacked(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    for name in PROJECT_FOLDERS:
        (folder / name).symlink_to(PROJECT_ROOT / name, target_is_directory=True)
    return folder


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_at_module_level(tree: ast.Module) -> set[str]:
    """Modules a file imports when it is imported: its top-level statements, the branches of
    top-level ifs and trys, but not function bodies nor `if TYPE_CHECKING:` blocks. For
    `from a import b`, both `a` and `a.b` (b may be a module)."""
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for statement in statements:
            if isinstance(statement, ast.Import):
                found.update(alias.name for alias in statement.names)
            elif isinstance(statement, ast.ImportFrom) and statement.module:
                found.add(statement.module)
                found.update(f"{statement.module}.{alias.name}" for alias in statement.names)
            elif isinstance(statement, ast.If):
                if not (
                    isinstance(statement.test, ast.Name) and statement.test.id == "TYPE_CHECKING"
                ):
                    visit(statement.body)
                visit(statement.orelse)
            elif isinstance(statement, ast.Try | ast.With):
                visit(statement.body)
                if isinstance(statement, ast.Try):
                    for handler in statement.handlers:
                        visit(handler.body)
                    visit(statement.orelse)
                    visit(statement.finalbody)

    visit(tree.body)
    return found


def with_packages(name: str) -> set[str]:
    """A module and the packages it sits in: importing it runs their `__init__` too."""
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts) + 1)}


def importers_of(package: str, unpacked: Path) -> set[str]:
    """The platform's modules that import `package` when imported: themselves, or through the
    platform's modules they import (`up` reaches the sandbox through `cli.sandbox`)."""
    imports = {
        module_name(path, unpacked): imports_at_module_level(ast.parse(path.read_text(), str(path)))
        for path in (unpacked / "integration_platform").rglob("*.py")
    }
    loads = {
        module: set().union(*(with_packages(name) for name in names), with_packages(module))
        for module, names in imports.items()
    }
    importers = {module for module, loaded in loads.items() if package in loaded}
    while more := {module for module, loaded in loads.items() if loaded & importers} - importers:
        importers |= more
    return importers


def test_wheel_holds_the_platform_package_and_no_sandbox_module(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"integration_platform", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "integration_platform/cli/__init__.py" in names  # the package is really in there
    sandbox_prefixes = ("integration_platform/sandbox/", f"{SANDBOX_PACKAGE}/")
    assert not [name for name in names if name.startswith(sandbox_prefixes)]


def test_only_the_on_demand_sandbox_commands_import_the_sandbox_when_imported(
    unpacked: Path,
) -> None:
    assert importers_of(SANDBOX_PACKAGE, unpacked) == ON_DEMAND


# Runs in a fresh interpreter whose path starts at the unpacked wheel, the sandbox made
# unimportable (as where it is not installed); prints what happened, as JSON.
IMPORT_EVERY_MODULE = """
import importlib, json, sys
sys.modules[{sandbox!r}] = None  # `import` now raises ModuleNotFoundError, as when missing
failed = {{}}
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{{type(exc).__name__}}: {{exc}}"
import integration_platform
print(json.dumps({{"failed": failed, "origin": integration_platform.__file__}}))
"""


def test_every_module_of_the_wheel_imports_when_the_sandbox_is_not_installed(
    unpacked: Path,
) -> None:
    modules = sorted(
        {module_name(path, unpacked) for path in (unpacked / "integration_platform").rglob("*.py")}
        - NOT_IMPORTED
        - ON_DEMAND
    )
    script = IMPORT_EVERY_MODULE.format(sandbox=SANDBOX_PACKAGE, modules=modules)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        cwd=unpacked,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(outcome["origin"]).is_relative_to(unpacked)
    assert outcome["failed"] == {}
    assert len(modules) > 100


def test_sandbox_commands_say_how_to_install_the_sandbox_when_it_is_not_installed(
    unpacked: Path,
) -> None:
    script = (
        f"import sys; sys.modules[{SANDBOX_PACKAGE!r}] = None\n"
        "from integration_platform.cli import main\n"
        "main(sys.argv[1:], prog_name='integration-platform')\n"
    )

    def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *arguments],
            env={**os.environ, "PYTHONPATH": str(unpacked)},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    for arguments in (["up"], ["demo"], ["sandbox", "up", "--seed", "3"]):
        failed = cli(*arguments)
        assert failed.returncode == 1, failed
        message = " ".join(failed.stderr.split())
        assert f"`integration-platform {arguments[0]}` runs the sandbox vendor APIs" in message
        assert "integration-platform-sandbox" in message
        assert "make install" in message
        assert "Traceback" not in failed.stderr
    validated = cli("validate")
    assert validated.returncode == 0, validated.stderr
    assert "✓" in validated.stdout
