"""Sandbox billing (Stripe-like REST): API key, offset pages, per-key rate limit, signed webhooks.

GET /v1/customers, /v1/subscriptions, /v1/invoices and /v1/payments take `offset` (>= 0),
`limit` (1..500, default 100), `created_since` and `created_before` (ISO 8601 or epoch
seconds) and answer `{"data": [...], "total": N, "offset": o, "limit": l}`. Money is messy on
purpose: invoices and subscriptions carry integer minor units, payments decimal strings in
major units. With `webhook_url` set, invoice and payment events are POSTed, signed the Standard
Webhooks way; POST /_sandbox/webhooks/emit?count=N sends the next N at once. An API key reads
its tenant's records; webhooks are the default tenant's (tenant 0), as the one receiver they go
to knows that tenant's secret only.
"""

from integration_platform_sandbox.vendors.billing.api import Billing, PageCache, create_app
from integration_platform_sandbox.vendors.billing.records import (
    VENDOR,
    BillingRecords,
    ground_truth,
)
from integration_platform_sandbox.vendors.billing.webhooks import BillingWebhooks

__all__ = [
    "VENDOR",
    "Billing",
    "BillingRecords",
    "BillingWebhooks",
    "PageCache",
    "create_app",
    "ground_truth",
]
