"""Where the project keeps its local state, and the sandbox's demo credentials."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SANDBOX_ENV_FILE = PROJECT_ROOT / "config" / "sandbox.env"


def load_sandbox_env(path: Path = SANDBOX_ENV_FILE) -> dict[str, str]:
    """Export the sandbox-only demo credentials for every variable not already set.

    Variables already in the environment win, so real values are never overwritten.
    Returns what was set.
    """
    added = {}
    for key, value in dotenv_values(path).items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
            added[key] = value
    return added
