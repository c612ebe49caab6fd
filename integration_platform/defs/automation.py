"""Sensors that watch the whole platform: the automation sensor that keeps the dbt models
fresh (automation/marts.py) and the alert on failed runs (automation/alerts.py)."""

from dagster import Definitions, definitions

from integration_platform.automation.alerts import build_alert_sensor
from integration_platform.automation.marts import automation_sensor


@definitions
def defs() -> Definitions:
    return Definitions(sensors=[build_alert_sensor(), automation_sensor()])
