"""The README's examples work as written: every YAML block is a source spec that the real
`integration-platform validate` accepts, and every JSON block parses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.readme_blocks import FencedBlock, fenced_blocks

CLI = Path(sys.prefix) / "bin" / "integration-platform"
YAML_BLOCKS = fenced_blocks("yaml")
JSON_BLOCKS = fenced_blocks("json")
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def test_readme_has_the_examples_these_tests_check_when_read() -> None:
    """Guards the tests below against passing on nothing (a renamed fence, a moved README)."""
    assert len(YAML_BLOCKS) >= 2 and len(JSON_BLOCKS) >= 1
    assert any(block.text.startswith("source: crm") for block in YAML_BLOCKS)


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda block: block.name)
def test_validate_accepts_the_readme_spec_when_it_is_saved_as_a_file(
    block: FencedBlock, tmp_path: Path
) -> None:
    spec = tmp_path / f"readme-{block.name}.yaml"
    spec.write_text(block.text)
    # `validate` leaves references unresolved; the variables are set anyway, to dummy values,
    # so that nothing here depends on what the environment or config/sandbox.env hold.
    dummies = {
        name: "http://127.0.0.1:9" if name.endswith("_URL") else f"dummy-{name.lower()}"
        for name in REFERENCE.findall(block.text)
    }
    result = subprocess.run(
        [str(CLI), "validate", str(spec)],
        env={**os.environ, **dummies},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"README.md line {block.line}:\n{result.stderr}"
    assert result.stdout.startswith(f"✓ {spec}: source "), result.stdout


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=lambda block: block.name)
def test_readme_json_parses_when_read_as_json(block: FencedBlock) -> None:
    try:
        json.loads(block.text)
    except json.JSONDecodeError as exc:
        pytest.fail(f"README.md line {block.line + exc.lineno - 1}: {exc.msg}")
