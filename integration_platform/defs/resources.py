"""The resources every run shares: warehouse, landing zone, alert webhook, webhook inbox
(each source's API resource comes with its spec, sources/; dbt's with the dbt asset)."""

import os

from dagster import Definitions, EnvVar, definitions

from integration_platform.assets.resources import default_resources
from integration_platform.automation.alerts import AlertWebhookResource
from integration_platform.automation.webhook_sensor import default_inbox_resource


@definitions
def defs() -> Definitions:
    return Definitions(
        resources={
            **default_resources(),
            "alerts": AlertWebhookResource(
                url=EnvVar("ALERT_WEBHOOK_URL") if os.environ.get("ALERT_WEBHOOK_URL") else ""
            ),
            "webhook_inbox": default_inbox_resource(),
        }
    )
