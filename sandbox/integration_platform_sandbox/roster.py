"""Which records each vendor holds, in the vendor's own order, with monotone timestamps.

A roster is two compact integer arrays (entity id, copy number) per vendor: an index, not the
data. Record contents are generated from (seed, vendor, entity, copy) when a page is served.
Positions map to timestamps monotonically, so a time filter is a contiguous position range.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import overload

from integration_platform_sandbox.population import (
    DATA_SPAN_SECONDS,
    DATA_START,
    Population,
    mix64,
    unit_interval,
)

# The SaaS vendors the demo runs (everyone is a customer of at least one of them), and the
# registry vendors: a clinic's patient index and an insurer's members, whose records carry only
# names, date of birth, address and a national id (for entity resolution without email/phone).
VENDORS = ("crm", "billing", "support", "analytics")
REGISTRY_VENDORS = ("clinic", "insurer")
ALL_VENDORS = VENDORS + REGISTRY_VENDORS
# Where each vendor's source spec reads its base URL from (sources/*.yaml: `${CRM_BASE_URL}`).
VENDOR_URL_VARIABLES = {vendor: f"{vendor.upper()}_BASE_URL" for vendor in ALL_VENDORS}
VENDOR_SALT = {
    "crm": 101,
    "billing": 202,
    "support": 303,
    "analytics": 404,
    "clinic": 505,
    "insurer": 606,
}
# Share of the population each vendor knows, and share of its records that are duplicates.
PRESENCE = {
    "crm": 0.80,
    "billing": 0.60,
    "support": 0.45,
    "analytics": 0.55,
    "clinic": 0.70,
    "insurer": 0.70,
}
DUPLICATE_RATE = {
    "crm": 0.04,
    "billing": 0.02,
    "support": 0.03,
    "analytics": 0.015,
    "clinic": 0.08,
    "insurer": 0.04,
}


class Timeline:
    """`count` positions spread over the sandbox's data year, timestamps strictly ordered."""

    def __init__(self, count: int, seed: int, salt: int) -> None:
        self.count = count
        self._seed = seed
        self._salt = salt

    def epoch(self, position: int) -> float:
        jitter = unit_interval(self._seed, self._salt, position)
        return DATA_START.timestamp() + (position + jitter) * DATA_SPAN_SECONDS / max(1, self.count)

    def at(self, position: int) -> datetime:
        return DATA_START + timedelta(seconds=self.epoch(position) - DATA_START.timestamp())

    def positions_between(self, since: datetime | None, until: datetime | None) -> range:
        """Positions whose timestamp t satisfies since <= t < until."""
        lo = 0 if since is None else self._first_at_or_after(since.timestamp())
        hi = self.count if until is None else self._first_at_or_after(until.timestamp())
        return range(lo, max(lo, hi))

    def _first_at_or_after(self, epoch: float) -> int:
        return bisect.bisect_left(_EpochView(self), epoch)


class _EpochView(Sequence[float]):
    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline

    def __len__(self) -> int:
        return self._timeline.count

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if isinstance(index, slice):
            raise TypeError("slicing a timeline is not supported")
        return self._timeline.epoch(index)


class Roster:
    """The customer records one vendor holds: position → (entity id, copy number)."""

    def __init__(self, population: Population, vendor: str) -> None:
        self.vendor = vendor
        entities, copies = array("i"), array("b")
        duplicates = array("i")
        seed, salt = population.seed, VENDOR_SALT[vendor]
        for entity in range(population.size):
            if not _is_member(seed, vendor, entity):
                continue
            entities.append(entity)
            copies.append(0)
            if unit_interval(seed, salt, entity, 2) < DUPLICATE_RATE[vendor]:
                duplicates.append(entity)
        # Duplicates arrive later than originals: a second sign-up, an import, a merge gone wrong.
        entities.extend(duplicates)
        copies.extend([1] * len(duplicates))
        self._entities, self._copies = entities, copies
        self.timeline = Timeline(len(entities), seed, salt)

    def __len__(self) -> int:
        return len(self._entities)

    def entity(self, position: int) -> int:
        return self._entities[position]

    def copy(self, position: int) -> int:
        return self._copies[position]

    def record_salt(self, position: int) -> int:
        """Identifies one record for noise generation: stable per (vendor, entity, copy)."""
        return mix64(VENDOR_SALT[self.vendor], self._entities[position], self._copies[position])


def _is_member(seed: int, vendor: str, entity: int) -> bool:
    if unit_interval(seed, VENDOR_SALT[vendor], entity, 1) < PRESENCE[vendor]:
        return True
    if vendor not in VENDORS:
        return False  # a registry knows whom it knows: not everyone is a patient
    # Nobody is in no SaaS system at all: such a person lives in exactly one vendor.
    if any(unit_interval(seed, VENDOR_SALT[v], entity, 1) < PRESENCE[v] for v in VENDORS):
        return False
    return VENDORS[mix64(seed, entity, 3) % len(VENDORS)] == vendor


class ChildIndex:
    """Children spread over parents by hash (uneven, like real data), with a reverse lookup."""

    def __init__(self, children: int, parents: int, seed: int, salt: int) -> None:
        self.children = children
        self.parents = parents
        self._seed = seed
        self._salt = salt

    def parent_of(self, child: int) -> int:
        return mix64(self._seed, self._salt, child) % self.parents

    def children_of(self, parent: int) -> Sequence[int]:
        start, end = self._offsets[parent], self._offsets[parent + 1]
        return self._order[start:end]

    @cached_property
    def _offsets(self) -> array[int]:
        counts = array("q", bytes(8 * (self.parents + 1)))
        for child in range(self.children):
            counts[self.parent_of(child) + 1] += 1
        for p in range(self.parents):
            counts[p + 1] += counts[p]
        return counts

    @cached_property
    def _order(self) -> array[int]:
        fill = array("q", self._offsets[:-1])
        order = array("q", bytes(8 * self.children))
        for child in range(self.children):
            parent = self.parent_of(child)
            order[fill[parent]] = child
            fill[parent] += 1
        return order
