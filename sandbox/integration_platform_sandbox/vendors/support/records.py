"""Sandbox support's records: customers, tickets (children of customers) and their comments,
built from the population when read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.population import mix64, rng_for
from integration_platform_sandbox.roster import ChildIndex, Timeline
from integration_platform_sandbox.vendors.common import TruthRow, iso
from integration_platform_sandbox.world import World

VENDOR = "support"
CUSTOMER_PREFIX, TICKET_PREFIX, COMMENT_PREFIX = "cus", "tkt", "cmt"
TICKETS_PER_CUSTOMER = 1.5
MAX_COMMENTS = 5  # a ticket has 0..MAX_COMMENTS-1 comments

# Salts keep each kind of derived value independent of the others.
_TICKET_SALT, _COMMENT_SALT = 0x5071, 0x5072

STATUSES, STATUS_WEIGHTS = ("open", "pending", "solved", "closed"), (0.2, 0.15, 0.4, 0.25)
PRIORITIES, PRIORITY_WEIGHTS = ("low", "normal", "high", "urgent"), (0.25, 0.5, 0.2, 0.05)
CHANNELS, CHANNEL_WEIGHTS = ("email", "chat", "phone", "web"), (0.5, 0.2, 0.1, 0.2)
SUBJECTS = (
    "Cannot log in to my account",
    "Refund for a duplicate charge",
    "Export to CSV fails",
    "How do I add a team member?",
    "Invoice shows the wrong address",
    "App crashes on start",
    "Password reset email never arrives",
    "Question about upgrading my plan",
    "Sync with calendar stopped working",
    "Please close my account",
    "Feature request: dark mode",
    "Two-factor code not accepted",
)
CUSTOMER_LINES = (
    "Hi, this is still happening for me.",
    "Any update on this?",
    "Thanks, that fixed it!",
    "I attached a screenshot of the error.",
    "It worked yesterday, nothing changed on my side.",
)
AGENT_LINES = (
    "Thanks for reaching out, we are looking into it.",
    "Could you send us a screenshot?",
    "This should be fixed now, please try again.",
    "I have escalated this to engineering.",
    "Closing this ticket as solved; reply to reopen it.",
)
AGENTS = ("Dana (Support)", "Luis (Support)", "Priya (Support)", "Sam (Billing Team)")


def ticket_index(world: World) -> ChildIndex:
    """Which customer position each ticket belongs to: tickets are children of customers."""
    customers = len(world.roster(VENDOR))
    return ChildIndex(
        children=round(TICKETS_PER_CUSTOMER * customers),
        parents=customers,
        seed=world.settings.seed,
        salt=_TICKET_SALT,
    )


def comment_count(seed: int, ticket: int) -> int:
    return mix64(seed, _COMMENT_SALT, ticket) % MAX_COMMENTS


class SupportRecords:
    """One tenant's helpdesk records: customers, tickets and comments."""

    def __init__(self, world: World, engine: ChaosEngine) -> None:
        self.world = world
        self.engine = engine
        self.seed = world.settings.seed
        self.roster = world.roster(VENDOR)
        self.tickets = ticket_index(world)
        self.ticket_timeline = Timeline(self.tickets.children, self.seed, _TICKET_SALT)

    def customer_record(self, position: int) -> dict[str, Any]:
        world = self.world
        ident = noisy_identity(world.population, self.roster, position, world.settings.noise)
        r = rng_for(self.seed, self.roster.record_salt(position), 0x5)
        updated = self.roster.timeline.at(position)
        created = updated - timedelta(days=r.randrange(0, 500), seconds=r.randrange(86400))
        # People type what they like into a helpdesk form: a full name, a first name, nothing.
        style = r.random()
        parts = (ident.first_name,) if style < 0.2 else (ident.first_name, ident.last_name)
        name = " ".join(part for part in parts if part) if style < 0.95 else None
        organization = world.population.company(ident.company_id).name if r.random() < 0.7 else None
        email, email_address = ident.email, None
        drift_from = self.engine.settings.schema_drift_from
        if drift_from is not None and updated.date() >= drift_from:
            # The vendor's contact-model migration: clients see `email` renamed `emailAddress`.
            email, email_address = None, email
        return {
            "name": name or None,
            "email": email,
            "emailAddress": email_address,
            "phone": ident.phone,
            "organization": organization,
            "createdAt": iso(created),
            "updatedAt": iso(updated),
        }

    def _ticket_times(self, ticket: int) -> tuple[datetime, datetime]:
        r = rng_for(self.seed, _TICKET_SALT, ticket, 1)
        updated = self.ticket_timeline.at(ticket)
        return updated - timedelta(minutes=r.randrange(5, 60 * 24 * 45)), updated

    def ticket_record(self, ticket: int) -> dict[str, Any]:
        r = rng_for(self.seed, _TICKET_SALT, ticket)
        created, updated = self._ticket_times(ticket)
        return {
            "subject": r.choice(SUBJECTS),
            "status": r.choices(STATUSES, STATUS_WEIGHTS)[0],
            "priority": r.choices(PRIORITIES, PRIORITY_WEIGHTS)[0],
            "channel": r.choices(CHANNELS, CHANNEL_WEIGHTS)[0],
            "createdAt": iso(created),
            "updatedAt": iso(updated),
        }

    def comment(self, ticket: int, index: int, count: int, requester: str) -> dict[str, Any]:
        r = rng_for(self.seed, _COMMENT_SALT, ticket, index)
        created, updated = self._ticket_times(ticket)
        # The first comment is the request itself; later ones spread up to the last update.
        at = created + (updated - created) * index / max(1, count - 1)
        by_customer = index == 0 or r.random() < 0.4
        return {
            "id": self.world.record_id(COMMENT_PREFIX, ticket * MAX_COMMENTS + index),
            "author": requester if by_customer else r.choice(AGENTS),
            "body": r.choice(
                SUBJECTS if index == 0 else CUSTOMER_LINES if by_customer else AGENT_LINES
            ),
            "public": by_customer or r.random() < 0.7,
            "createdAt": iso(at),
        }

    @cached_property
    def comment_total(self) -> int:
        return sum(comment_count(self.seed, ticket) for ticket in range(self.tickets.children))

    def _requester(self, ticket: int) -> str:
        customer = self.customer_record(self.tickets.parent_of(ticket))
        return str(customer["name"] or customer["email"] or customer["emailAddress"] or "Customer")


def ground_truth(world: World) -> Iterator[TruthRow]:
    roster = world.roster(VENDOR)
    for position in range(len(roster)):
        yield TruthRow(
            "customers", world.record_id(CUSTOMER_PREFIX, position), roster.entity(position)
        )
