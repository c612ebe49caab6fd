"""What kind of work a run is: one tag on every run the platform itself launches, so the
Dagster UI's Runs view can be filtered to one kind (tag `integration_platform/kind=sync`)."""

from __future__ import annotations

KIND_TAG = "integration_platform/kind"
WEBHOOK_DRAIN = "webhook_drain"
"""`drain_webhooks`, launched by `webhook_inbox_sensor`."""
SCHEDULED = "scheduled"
"""A source's daily or reference schedule."""
RECONCILIATION = "reconciliation"
"""The daily pull that fills what webhooks missed."""
SYNC = "sync"
"""A sync asked for through the Integration Platform API."""
MATERIALIZE = "materialize"
"""`integration-platform materialize` and `demo`."""
AUTOMATION = "automation"
"""A dbt build that Dagster's `automation_sensor` requested when raw data landed."""
