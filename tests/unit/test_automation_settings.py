"""The automation's settings from the environment: a value that cannot work stops the
definitions from loading, naming the variable and what to set."""

from __future__ import annotations

import pytest

from integration_platform.automation.marts import (
    MAX_WAIT_CRON,
    MAX_WAIT_CRON_VARIABLE,
    max_wait_cron,
)
from integration_platform.automation.switch import SWITCH, automation_on
from integration_platform.environment import SettingError


def test_the_wait_cap_marks_come_from_the_variable_when_it_holds_a_cron_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MAX_WAIT_CRON_VARIABLE, raising=False)
    assert max_wait_cron() == MAX_WAIT_CRON
    monkeypatch.setenv(MAX_WAIT_CRON_VARIABLE, "0 * * * *")
    assert max_wait_cron() == "0 * * * *"


def test_a_wait_cap_that_is_not_a_cron_string_names_the_variable_when_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MAX_WAIT_CRON_VARIABLE, "every half hour")
    with pytest.raises(SettingError, match=f"{MAX_WAIT_CRON_VARIABLE}='every half hour'"):
        max_wait_cron()


def test_the_switch_refuses_a_value_other_than_on_or_off_when_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SWITCH, "OFF ")
    assert not automation_on()
    monkeypatch.setenv(SWITCH, "maybe")
    with pytest.raises(ValueError, match="use on or off"):
        automation_on()
