"""The registry variant's people: names, date of birth, address and a national id, FEBRL-style.

A registry record (the clinic's patients, the insurer's members) knows no email and no phone.
Its damage is the kind FEBRL's generator (Christen, `dsgen`) puts into such data: typos and
nicknames in names, given name and surname swapped, day and month of birth swapped or a digit
mistyped (which may leave a date that does not exist), a street number dropped, street and
suburb misspelt, postcodes mistyped, the national id mistyped or missing, and people who moved.
A duplicate inside one registry takes twice the damage, as in FEBRL, where duplicates are
modified copies. A heavier noise level (noise_levels.py) scales the rates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from integration_platform_sandbox import noise
from integration_platform_sandbox.noise_levels import DEFAULT_NOISE, NoiseLevel, at_level
from integration_platform_sandbox.population import Population, mix64, rng_for
from integration_platform_sandbox.roster import Roster


@dataclass(frozen=True)
class RegistryNoise:
    """Probability of each kind of damage in one registry's records."""

    name_typo: float
    nickname: float
    names_swapped: float
    given_name_missing: float
    surname_missing: float
    street_number_missing: float
    street_typo: float
    address_lines_swapped: float
    suburb_typo: float
    suburb_missing: float
    postcode_typo: float
    postcode_missing: float
    state_missing: float
    moved: float
    birth_date_missing: float
    birth_day_month_swapped: float
    birth_date_typo: float
    national_id_missing: float
    national_id_typo: float


REGISTRY_NOISE = {
    "clinic": RegistryNoise(
        name_typo=0.06,
        nickname=0.04,
        names_swapped=0.03,
        given_name_missing=0.02,
        surname_missing=0.01,
        street_number_missing=0.04,
        street_typo=0.04,
        address_lines_swapped=0.02,
        suburb_typo=0.03,
        suburb_missing=0.03,
        postcode_typo=0.02,
        postcode_missing=0.02,
        state_missing=0.05,
        moved=0.04,
        birth_date_missing=0.04,
        birth_day_month_swapped=0.02,
        birth_date_typo=0.03,
        national_id_missing=0.10,
        national_id_typo=0.04,
    ),
    "insurer": RegistryNoise(
        name_typo=0.05,
        nickname=0.03,
        names_swapped=0.02,
        given_name_missing=0.01,
        surname_missing=0.01,
        street_number_missing=0.03,
        street_typo=0.03,
        address_lines_swapped=0.0,
        suburb_typo=0.02,
        suburb_missing=0.02,
        postcode_typo=0.02,
        postcode_missing=0.01,
        state_missing=0.03,
        moved=0.05,
        birth_date_missing=0.03,
        birth_day_month_swapped=0.02,
        birth_date_typo=0.02,
        national_id_missing=0.06,
        national_id_typo=0.03,
    ),
}
UNIT_KINDS = ("Apt", "Unit", "Flat", "Suite")


@dataclass(frozen=True)
class RegistryPerson:
    """One registry record's view of its person. `birth_digits` is YYYYMMDD as the registry
    holds it, which after a typo may be no real date."""

    entity_id: int
    given_name: str | None
    surname: str | None
    street_number: str | None
    street_name: str | None
    unit: str | None
    suburb: str | None
    postcode: str | None
    state: str | None
    country: str
    birth_digits: str | None
    national_id: str | None


def registry_person(
    population: Population, roster: Roster, position: int, level: NoiseLevel = DEFAULT_NOISE
) -> RegistryPerson:
    entity, copy = roster.entity(position), roster.copy(position)
    person = population.person(entity)
    rates = at_level(REGISTRY_NOISE[roster.vendor], level)
    slips = level.typos_per_field
    r = rng_for(population.seed, roster.record_salt(position))
    harm = 2.0 if copy else 1.0

    def hit(p: float) -> bool:
        return r.random() < min(1.0, p * harm)

    given: str | None = person.first_name
    surname: str | None = person.last_name
    if hit(rates.nickname):
        given = noise.nickname(person.first_name) or given
    if hit(rates.name_typo):
        given = noise.typos(given or "", r, slips)
    if hit(rates.name_typo):
        surname = noise.typos(person.last_name, r, slips)
    if hit(rates.names_swapped):
        given, surname = surname, given
    if hit(rates.given_name_missing):
        given = None
    if hit(rates.surname_missing):
        surname = None

    address = population.moved_address(entity) if hit(rates.moved) else person.address
    number, _, street = address.street.partition(" ")
    street = noise.street_variant(street, r)
    if hit(rates.street_typo):
        street = noise.typos(street, r, slips)
    # about one person in six lives in a unit; the unit belongs to the person, not the record
    unit_roll = mix64(population.seed, 0x14, entity)
    unit = (
        f"{UNIT_KINDS[unit_roll % len(UNIT_KINDS)]} {1 + (unit_roll >> 8) % 40}"
        if unit_roll % 6 == 0 and address is person.address
        else None
    )
    if hit(rates.address_lines_swapped) and unit is not None:
        street, unit = unit, street
    street_number: str | None = None if hit(rates.street_number_missing) else number
    suburb: str | None = address.city
    if hit(rates.suburb_typo):
        suburb = noise.typos(address.city, r, slips)
    if hit(rates.suburb_missing):
        suburb = None
    postcode: str | None = noise.postcode_variant(address, r)
    if hit(rates.postcode_typo):
        postcode = digit_typo(address.postcode, r)
    if hit(rates.postcode_missing):
        postcode = None
    state = None if hit(rates.state_missing) else address.state

    digits = person.date_of_birth.strftime("%Y%m%d")
    if hit(rates.birth_day_month_swapped):
        digits = digits[:4] + digits[6:] + digits[4:6]
    if hit(rates.birth_date_typo):
        digits = digit_typo(digits, r, first=2)
    birth = None if hit(rates.birth_date_missing) else digits

    national_id: str | None = person.national_id
    if hit(rates.national_id_typo):
        national_id = (
            digit_typo(person.national_id, r)
            if r.random() < 0.6
            else (transposed(person.national_id, r))
        )
    if hit(rates.national_id_missing):
        national_id = None
    return RegistryPerson(
        entity,
        given,
        surname,
        street_number,
        street,
        unit,
        suburb,
        postcode,
        state,
        address.country,
        birth,
        national_id,
    )


def digit_typo(text: str, r: random.Random, first: int = 0) -> str:
    """One digit replaced by another (a keying slip), at or after position `first`."""
    digits = [i for i, ch in enumerate(text) if ch.isdigit() and i >= first]
    if not digits:
        return noise.typo(text, r)
    i = r.choice(digits)
    replacement = r.choice([d for d in "0123456789" if d != text[i]])
    return text[:i] + replacement + text[i + 1 :]


def transposed(text: str, r: random.Random) -> str:
    """Two neighbouring characters swapped (a transposition, one edit in Damerau's sense)."""
    candidates = [i for i in range(len(text) - 1) if text[i] != text[i + 1]]
    if not candidates:
        return text
    i = r.choice(candidates)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def national_id_format(national_id: str, country: str, r: random.Random) -> str:
    """How systems write the same nine digits: SSN-style with hyphens, grouped, or plain."""
    if len(national_id) != 9 or not national_id.isdigit():
        return national_id
    return r.choice(
        (
            f"{national_id[:3]}-{national_id[3:5]}-{national_id[5:]}"
            if country == "US"
            else f"{national_id[:3]} {national_id[3:6]} {national_id[6:]}",
            national_id,
            national_id,
        )
    )
