"""Noise levels: how much harder than the default the sandbox makes entity resolution.

`default` is the sandbox's data as it always was, value for value. Heavier levels, from the same
seed, multiply each vendor's damage rates, lose more values, put more slips in a damaged value,
swap names and days with months, and add families who share a surname and an address (some of
them twins, born the same day): different people that look alike, the classic false positives.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TypeVar


@dataclass(frozen=True)
class NoiseLevel:
    """What one level changes, relative to each vendor's own rates (`identity.VENDOR_NOISE`,
    `registry.REGISTRY_NOISE`). Every rate is per record; a duplicate takes twice as much."""

    name: str
    # multiplies each vendor's damage rates (typos, nicknames, variants, case, moves, swaps)
    damage_factor: float = 1.0
    # a vendor missing a field at rate p misses it at p + (1 - p) * extra_missing
    extra_missing: float = 0.0
    # a value a typo hits gets 1 to this many keyboard slips
    typos_per_field: int = 1
    # SaaS records: email, street and city take typos too (the default puts them in names only)
    field_typo: float = 0.0
    # SaaS records: first and last name in each other's field
    names_swapped: float = 0.0
    # SaaS records: day and month of birth swapped (where the swap is a real date)
    day_month_swapped: float = 0.0
    # share of people who live with an earlier person of their family: same surname, same
    # address, their own first name, email and phone
    family_members: float = 0.0
    # share of people (part of family_members) who are that person's twin: born the same day
    twins: float = 0.0

    @property
    def damages_saas_fields(self) -> bool:
        """Whether SaaS records take damage the default level has no rate for."""
        return bool(self.field_typo or self.names_swapped or self.day_month_swapped)


NOISE_LEVELS: dict[str, NoiseLevel] = {
    "default": NoiseLevel("default"),
    "heavy": NoiseLevel(
        "heavy",
        damage_factor=2.0,
        extra_missing=0.10,
        typos_per_field=2,
        field_typo=0.05,
        names_swapped=0.03,
        day_month_swapped=0.03,
        family_members=0.15,
        twins=0.02,
    ),
    "extreme": NoiseLevel(
        "extreme",
        damage_factor=3.5,
        extra_missing=0.25,
        typos_per_field=3,
        field_typo=0.15,
        names_swapped=0.08,
        day_month_swapped=0.08,
        family_members=0.30,
        twins=0.05,
    ),
}
DEFAULT_NOISE = NOISE_LEVELS["default"]

Rates = TypeVar("Rates")


def at_level(rates: Rates, level: NoiseLevel) -> Rates:
    """A vendor's rates (a dataclass of probabilities) at `level`: a `*_missing` rate loses
    `extra_missing` of what was left, every other rate is multiplied by `damage_factor`."""
    if level == DEFAULT_NOISE:
        return rates
    changed = {}
    for rate in fields(rates):  # type: ignore[arg-type]
        p = getattr(rates, rate.name)
        changed[rate.name] = (
            p + (1.0 - p) * level.extra_missing
            if rate.name.endswith("_missing")
            else min(1.0, p * level.damage_factor)
        )
    return replace(rates, **changed)  # type: ignore[type-var]
