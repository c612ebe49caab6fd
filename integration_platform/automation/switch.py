"""One switch for everything that runs by itself: `INTEGRATION_PLATFORM_AUTOMATION=off` starts
the source schedules, the reconciliation pulls and the automation sensor STOPPED (turn each on
in the UI's Automation page); `on`, the default, starts them RUNNING."""

from __future__ import annotations

import os

from dagster import DefaultScheduleStatus, DefaultSensorStatus

SWITCH = "INTEGRATION_PLATFORM_AUTOMATION"


def automation_on() -> bool:
    value = os.environ.get(SWITCH, "on").strip().lower()
    if value not in {"on", "off"}:
        raise ValueError(f"{SWITCH}={value!r}: use on or off")
    return value == "on"


def default_status() -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if automation_on() else DefaultSensorStatus.STOPPED


def default_schedule_status() -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if automation_on() else DefaultScheduleStatus.STOPPED
