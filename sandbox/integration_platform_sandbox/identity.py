"""How one vendor record sees its person: the true identity passed through that vendor's noise,
scaled by the sandbox's noise level (noise_levels.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date

from integration_platform_sandbox import noise
from integration_platform_sandbox.noise_levels import DEFAULT_NOISE, NoiseLevel, at_level
from integration_platform_sandbox.population import Population, rng_for
from integration_platform_sandbox.roster import Roster


@dataclass(frozen=True)
class NoiseRates:
    """Probability of each kind of damage in one vendor's records (duplicates get twice as much)."""

    email_missing: float
    email_variant: float
    nickname: float
    name_typo: float
    name_case: float
    first_name_missing: float
    phone_missing: float
    address_moved: float
    address_missing: float
    dob_missing: float


VENDOR_NOISE = {
    "crm": NoiseRates(
        email_missing=0.08,
        email_variant=0.15,
        nickname=0.12,
        name_typo=0.04,
        name_case=0.05,
        first_name_missing=0.01,
        phone_missing=0.10,
        address_moved=0.06,
        address_missing=0.05,
        dob_missing=0.60,
    ),
    "billing": NoiseRates(
        email_missing=0.01,
        email_variant=0.12,
        nickname=0.05,
        name_typo=0.03,
        name_case=0.10,
        first_name_missing=0.0,
        phone_missing=0.35,
        address_moved=0.10,
        address_missing=0.02,
        dob_missing=1.0,
    ),
    "support": NoiseRates(
        email_missing=0.03,
        email_variant=0.20,
        nickname=0.20,
        name_typo=0.05,
        name_case=0.10,
        first_name_missing=0.05,
        phone_missing=0.75,
        address_moved=0.0,
        address_missing=1.0,
        dob_missing=1.0,
    ),
    "analytics": NoiseRates(
        email_missing=0.0,
        email_variant=0.10,
        nickname=0.10,
        name_typo=0.03,
        name_case=0.05,
        first_name_missing=0.25,
        phone_missing=1.0,
        address_moved=0.0,
        address_missing=0.40,
        dob_missing=0.85,
    ),
}


@dataclass(frozen=True)
class NoisyAddress:
    street: str
    city: str
    state: str
    postcode: str
    country: str


@dataclass(frozen=True)
class NoisyIdentity:
    entity_id: int
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    address: NoisyAddress | None
    date_of_birth: date | None
    company_id: int


def noisy_identity(
    population: Population, roster: Roster, position: int, level: NoiseLevel = DEFAULT_NOISE
) -> NoisyIdentity:
    entity, copy = roster.entity(position), roster.copy(position)
    person = population.person(entity)
    rates = at_level(VENDOR_NOISE[roster.vendor], level)
    r = rng_for(population.seed, roster.record_salt(position))
    harm = 2.0 if copy else 1.0

    def hit(p: float) -> bool:
        return r.random() < min(1.0, p * harm)

    first: str | None = person.first_name
    if hit(rates.nickname):
        first = noise.nickname(person.first_name) or first
    last: str | None = person.last_name
    if hit(rates.name_typo):
        if r.random() < 0.5:
            first = noise.typos(first or "", r, level.typos_per_field)
        else:
            last = noise.typos(person.last_name, r, level.typos_per_field)
    if hit(rates.name_case):
        first, last = noise.recase(first or "", r), noise.recase(person.last_name, r)
    if hit(rates.first_name_missing):
        first = None

    email: str | None = person.email
    if hit(rates.email_variant):
        email = noise.email_variant(person.email, r, alias_tag=roster.vendor)
    if hit(rates.email_missing):
        email = None

    phone = None if hit(rates.phone_missing) else noise.phone_format(person, r)

    address = None
    if not hit(rates.address_missing):
        true = population.moved_address(entity) if hit(rates.address_moved) else person.address
        address = NoisyAddress(
            street=noise.street_variant(true.street, r),
            city=noise.recase(true.city, r) if r.random() < 0.1 else true.city,
            state=true.state,
            postcode=noise.postcode_variant(true, r),
            country=true.country,
        )
    dob = None if rates.dob_missing >= 1.0 or hit(rates.dob_missing) else person.date_of_birth
    identity = NoisyIdentity(entity, first, last, email, phone, address, dob, person.company_id)
    if level.damages_saas_fields:
        identity = _heavier(
            identity, level, harm, rng_for(population.seed, roster.record_salt(position), 0x4E)
        )
    return identity


def _heavier(
    identity: NoisyIdentity, level: NoiseLevel, harm: float, r: random.Random
) -> NoisyIdentity:
    """The damage only heavier levels do: typos beyond names, swapped names and birth dates.
    (Its own generator: the draws of the default damage stay as they are.)"""

    def hit(p: float) -> bool:
        return r.random() < min(1.0, p * harm)

    def slipped(text: str | None) -> str | None:
        return (
            noise.typos(text, r, level.typos_per_field) if text and hit(level.field_typo) else text
        )

    email = identity.email
    if email is not None and "@" in email:
        local, _, domain = email.partition("@")
        email = f"{slipped(local)}@{domain}"
    address = identity.address
    if address is not None:
        address = replace(
            address, street=slipped(address.street) or "", city=slipped(address.city) or ""
        )
    first, last = identity.first_name, identity.last_name
    if hit(level.names_swapped):
        first, last = last, first
    dob = identity.date_of_birth
    if dob is not None and hit(level.day_month_swapped) and dob.day <= 12 and dob.day != dob.month:
        dob = dob.replace(month=dob.day, day=dob.month)
    return replace(
        identity, first_name=first, last_name=last, email=email, address=address, date_of_birth=dob
    )
