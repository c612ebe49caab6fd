"""The platform's definitions as Dagster loads them, built once per test session."""

from __future__ import annotations

import pytest
from dagster import Definitions


@pytest.fixture(scope="session")
def platform_defs() -> Definitions:
    from integration_platform.definitions import defs

    return defs()
