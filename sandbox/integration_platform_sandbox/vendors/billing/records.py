"""Sandbox billing's records: customers, subscriptions, invoices and payments, built from the
population when served (rosters and timelines are indexes, not data), and the revenue totals
computed from the same canonical facts."""

from __future__ import annotations

import random
from array import array
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.population import (
    COUNTRIES,
    DATA_END,
    DATA_SPAN_SECONDS,
    DATA_START,
    rng_for,
    unit_interval,
)
from integration_platform_sandbox.roster import ChildIndex, Timeline
from integration_platform_sandbox.vendors.common import TruthRow, iso
from integration_platform_sandbox.world import World

VENDOR = "billing"
CUSTOMER_PREFIX, SUBSCRIPTION_PREFIX, INVOICE_PREFIX, PAYMENT_PREFIX = "cus", "sub", "in", "py"
ENDPOINTS = ("customers", "subscriptions", "invoices", "payments")

# Monthly prices in minor units; the number is the same whatever the customer's currency.
PLAN_PRICES = {"starter": 2900, "pro": 9900, "business": 29900}
INVOICES_PER_SUBSCRIPTION = 4
# Payments settle this long after their invoice; the invoice year is shortened to fit it.
PAYMENT_DELAY_SECONDS = 3 * 86400
CURRENCIES = tuple(sorted({currency for _locale, currency, _cc, _share in COUNTRIES.values()}))

# Canonical status, its share, and the spellings the vendor's integrations have stored over
# the years (repeats weight the common spelling).
SUBSCRIPTION_STATUSES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("active", 0.75, ("active", "active", "active", "ACTIVE", "Active")),
    ("trialing", 0.06, ("trialing", "trialing", "Trialing")),
    ("canceled", 0.12, ("canceled", "canceled", "cancelled", "CANCELED")),
    ("past_due", 0.07, ("past_due", "past_due", "PAST_DUE")),
)
INVOICE_STATUSES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("paid", 0.86, ("paid", "paid", "paid", "paid", "PAID", "Paid", "1")),
    ("open", 0.07, ("open", "open", "OPEN")),
    ("void", 0.04, ("void", "void", "VOID")),
    ("uncollectible", 0.03, ("uncollectible", "uncollectible", "UNCOLLECTIBLE")),
)
PAYMENT_SPELLINGS = {
    "succeeded": ("succeeded", "succeeded", "succeeded", "SUCCEEDED", "success"),
    "failed": ("failed", "failed", "FAILED"),
    "pending": ("pending", "pending", "PENDING"),
}

# Salts keep each kind of record's random stream apart.
_SALT_SUBSCRIPTION, _SALT_SUBSCRIPTION_STATUS = 0xB5B, 0xB5C
_SALT_INVOICE, _SALT_INVOICE_STATUS, _SALT_INVOICE_PARENT = 0xB1A, 0xB1B, 0xB1C
_SALT_PAYMENT, _SALT_PAYMENT_STATUS, _SALT_PAYMENT_TIME = 0xBA1, 0xBA2, 0xBA3
_SALT_CUSTOMER = 0xBC1


class _WindowTimeline(Timeline):
    """A timeline over part of the data year, so a record plus a fixed delay stays inside it."""

    def __init__(
        self,
        count: int,
        seed: int,
        salt: int,
        *,
        lead_seconds: float = 0.0,
        lag_seconds: float = 0.0,
    ) -> None:
        super().__init__(count, seed, salt)
        self._window_seed, self._window_salt = seed, salt
        self._origin = DATA_START.timestamp() + lead_seconds
        self._span = DATA_SPAN_SECONDS - lead_seconds - lag_seconds

    def epoch(self, position: int) -> float:
        jitter = unit_interval(self._window_seed, self._window_salt, position)
        return self._origin + (position + jitter) * self._span / max(1, self.count)


class BillingRecords:
    """One tenant's billing records and the facts they share (plan, currency, statuses)."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        self.world = world
        self.engine = engine
        seed = world.settings.seed
        self.seed = seed
        self.roster = world.roster(VENDOR)
        subscriptions = len(self.roster)
        self.invoice_count = INVOICES_PER_SUBSCRIPTION * subscriptions
        self.invoice_parents = ChildIndex(
            self.invoice_count, subscriptions, seed, _SALT_INVOICE_PARENT
        )
        self.invoice_timeline = _WindowTimeline(
            self.invoice_count, seed, _SALT_INVOICE, lag_seconds=PAYMENT_DELAY_SECONDS
        )
        self.payment_timeline = _WindowTimeline(
            self.invoice_count, seed, _SALT_PAYMENT_TIME, lead_seconds=PAYMENT_DELAY_SECONDS
        )
        self._revenue: dict[str, dict[str, Any]] | None = None

    # -- canonical facts (shared by the records, the webhooks and the revenue totals) -------

    def _account(self, position: int) -> tuple[str, str]:
        """(plan, currency) of the customer at `position`, from the true person."""
        person = self.world.population.person(self.roster.entity(position))
        return person.plan, person.currency

    def invoice_status(self, invoice: int) -> str:
        return _pick(INVOICE_STATUSES, unit_interval(self.seed, _SALT_INVOICE_STATUS, invoice))

    def payment_status(self, payment: int, invoice_status: str | None = None) -> str:
        """Payment j settles invoice j, so its outcome follows from the invoice's."""
        if invoice_status is None:
            invoice_status = self.invoice_status(payment)
        if invoice_status == "paid":
            return "succeeded"
        if invoice_status == "open":
            # An open invoice's payment is either still in flight or was declined.
            u = unit_interval(self.seed, _SALT_PAYMENT_STATUS, payment)
            return "pending" if u < 0.5 else "failed"
        return "failed"

    # -- records -----------------------------------------------------------------------------

    def customer(self, position: int) -> dict[str, Any]:
        world = self.world
        ident = noisy_identity(world.population, self.roster, position, world.settings.noise)
        r = rng_for(self.seed, self.roster.record_salt(position), _SALT_CUSTOMER)
        first, last = ident.first_name, ident.last_name
        name: str | None
        if first and last:
            name = f"{last}, {first}" if r.random() < 0.12 else f"{first} {last}"
        else:
            name = first or last
        if r.random() < 0.01:
            name = None  # created by a checkout that only asked for an email
        person_currency = self._account(position)[1]
        return {
            "id": world.record_id(CUSTOMER_PREFIX, position),
            "name": name,
            "email": ident.email,
            "phone": ident.phone,
            "address": None
            if ident.address is None
            else {
                "line1": ident.address.street,
                "city": ident.address.city,
                "state": ident.address.state,
                "postal_code": ident.address.postcode,
                "country": ident.address.country,
            },
            "currency": person_currency,
            "created": int(self.roster.timeline.epoch(position)),
            "metadata": {},
        }

    def subscription(self, position: int) -> dict[str, Any]:
        plan, currency = self._account(position)
        r = rng_for(self.seed, _SALT_SUBSCRIPTION, position)
        # Checkout creates the customer and the subscription together.
        created = int(self.roster.timeline.epoch(position))
        status = _pick(
            SUBSCRIPTION_STATUSES, unit_interval(self.seed, _SALT_SUBSCRIPTION_STATUS, position)
        )
        return {
            "id": self.world.record_id(SUBSCRIPTION_PREFIX, position),
            "customer": self.world.record_id(CUSTOMER_PREFIX, position),
            "plan": plan,
            "status": r.choice(_spellings(SUBSCRIPTION_STATUSES, status)),
            "amount": PLAN_PRICES[plan],
            "currency": _messy_case(currency, r),
            "current_period_start": iso(_current_period_start(created)),
            "created": created,
        }

    def invoice(self, invoice: int) -> dict[str, Any]:
        subscription = self.invoice_parents.parent_of(invoice)
        plan, currency = self._account(subscription)
        r = rng_for(self.seed, _SALT_INVOICE, invoice)
        created = int(self.invoice_timeline.epoch(invoice))
        period_start = datetime.fromtimestamp(created, UTC)
        status = r.choice(_spellings(INVOICE_STATUSES, self.invoice_status(invoice)))
        record: dict[str, Any] = {
            "id": self.world.record_id(INVOICE_PREFIX, invoice),
            "customer": self.world.record_id(CUSTOMER_PREFIX, subscription),
            "subscription": self.world.record_id(SUBSCRIPTION_PREFIX, subscription),
            "amount_due": PLAN_PRICES[plan],
            "currency": _messy_case(currency, r),
            "status": status,
            "created": created,
            "period_start": created,
            "period_end": int(_add_months(period_start, 1).timestamp()),
        }
        drift_from = self.engine.settings.schema_drift_from
        if drift_from is not None and period_start.date() >= drift_from:
            # The vendor's 2025 API version: amounts as major-unit strings, `status` → `state`.
            record["amount_due"] = _major_units(PLAN_PRICES[plan])
            del record["status"]
            record["state"] = status
        return record

    def payment(self, payment: int) -> dict[str, Any]:
        subscription = self.invoice_parents.parent_of(payment)
        plan, currency = self._account(subscription)
        r = rng_for(self.seed, _SALT_PAYMENT, payment)
        created = datetime.fromtimestamp(int(self.payment_timeline.epoch(payment)), UTC)
        return {
            "id": self.world.record_id(PAYMENT_PREFIX, payment),
            "invoice": self.world.record_id(INVOICE_PREFIX, payment),
            "customer": self.world.record_id(CUSTOMER_PREFIX, subscription),
            "amount": _major_units(PLAN_PRICES[plan]),
            "currency": _messy_case(currency, r),
            "status": r.choice(PAYMENT_SPELLINGS[self.payment_status(payment)]),
            "created": iso(created),
        }

    # -- totals ------------------------------------------------------------------------------

    def revenue(self) -> dict[str, dict[str, Any]]:
        """Per currency: paid invoices (minor units) and succeeded payments (major, Decimal).

        Computed from the canonical facts, so it holds whatever the drift or the spellings.
        """
        if self._revenue is None:
            # Compact per-subscription facts: a million customers cost a few megabytes here.
            plans, currencies = tuple(PLAN_PRICES), CURRENCIES
            plan_of, currency_of = array("b"), array("b")
            for position in range(len(self.roster)):
                plan, currency = self._account(position)
                plan_of.append(plans.index(plan))
                currency_of.append(currencies.index(currency))
            paid_minor, paid_count, succeeded = Counter[int](), Counter[int](), Counter[int]()
            for index in range(self.invoice_count):
                subscription = self.invoice_parents.parent_of(index)
                amount = PLAN_PRICES[plans[plan_of[subscription]]]
                currency_index = currency_of[subscription]
                invoice_status = self.invoice_status(index)
                if invoice_status == "paid":
                    paid_minor[currency_index] += amount
                    paid_count[currency_index] += 1
                if self.payment_status(index, invoice_status) == "succeeded":
                    succeeded[currency_index] += amount
            self._revenue = {
                currencies[c]: {
                    "invoices_paid": paid_count[c],
                    "invoices_paid_amount_due_minor": paid_minor[c],
                    "payments_succeeded_amount": _major_units(succeeded[c]),
                }
                for c in sorted(set(paid_minor) | set(succeeded), key=currencies.__getitem__)
            }
        return self._revenue


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow(
            "customers", world.record_id(CUSTOMER_PREFIX, position), roster.entity(position)
        )


def _pick(statuses: tuple[tuple[str, float, tuple[str, ...]], ...], u: float) -> str:
    for status, share, _spelling in statuses:
        if u < share:
            return status
        u -= share
    return statuses[-1][0]


def _spellings(
    statuses: tuple[tuple[str, float, tuple[str, ...]], ...], status: str
) -> tuple[str, ...]:
    return next(spellings for name, _share, spellings in statuses if name == status)


def _messy_case(currency: str, r: random.Random) -> str:
    return currency.lower() if r.random() < 0.5 else currency


def _major_units(minor: int) -> str:
    return str(Decimal(minor).scaleb(-2))


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    # Clamp the day: a subscription started on the 31st renews on the last day of short months.
    next_month = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=moment.tzinfo)
    last_day = (next_month - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _current_period_start(created: int) -> datetime:
    """The last monthly renewal before the end of the data year."""
    start = datetime.fromtimestamp(created, UTC)
    months = (DATA_END.year - start.year) * 12 + DATA_END.month - start.month
    period = _add_months(start, months)
    while period >= DATA_END:
        months -= 1
        period = _add_months(start, months)
    return period
