"""The sandbox's noise levels: the default is the data it always served, heavier ones are
deterministic and hold the traps they promise (families, twins, swaps, gaps, more typos)."""

from __future__ import annotations

import hashlib
from datetime import date

import orjson
import pytest
from click.testing import CliRunner, Result

from integration_platform.cli import main
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.noise import nickname
from integration_platform_sandbox.noise_levels import NOISE_LEVELS, NoiseLevel
from integration_platform_sandbox.population import Address, Population, true_people_csv
from integration_platform_sandbox.registry import registry_person
from integration_platform_sandbox.roster import ALL_VENDORS, VENDORS, Roster
from integration_platform_sandbox.server import VENDOR_TRUTH
from integration_platform_sandbox.vendors.clinic import PATIENT_PREFIX
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings, World
from tests.raw_projection import customer_endpoints

HEAVY, EXTREME = NOISE_LEVELS["heavy"], NOISE_LEVELS["extreme"]
HEAVIER = (HEAVY, EXTREME)

# sha256 of every customer record of each vendor (orjson, sorted keys, one per line) and of the
# true people's CSV, seed 42 and 300 customers, as main served them before noise levels existed.
MAIN_DIGESTS = {
    "crm": "e01d557e3ab6fd2cf04fa9be13fdb99bc4a9f23a1704ffb4609bacc183af717d",
    "billing": "4ab9e4a59dd986c5f078511b34a92064238bceec8eb8e1cc8a0456a0bed4129c",
    "support": "c3b6fd661f96a2a6b425f7a1c7bc6a5ed0b850d94eb59c0a399bc227861bc204",
    "analytics": "2600b9e60c526d3f9a036aeef98683f4e684859e0bc5af57a71499d1790a8dc7",
    "clinic": "e15fc1bdc86434fe63eefc57d38ae536757d361ae4bb6a49fc7e1c234826e8dd",
    "insurer": "e07a66c94c5496dd9a96a064f6366c694e95a6d253bb3585531b9817c80e6745",
    "people": "8048a3cdf49da740a8bfb12a218d142691dac4f01de149eaa0ff80a04c586589",
}


def _digests(world: World) -> dict[str, str]:
    digests = {}
    for endpoint in customer_endpoints(world, ALL_VENDORS):
        digest = hashlib.sha256()
        for position in range(endpoint.count):
            record = endpoint.record(position)
            digest.update(orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n")
        digests[endpoint.vendor] = digest.hexdigest()
    digests["people"] = hashlib.sha256(b"".join(true_people_csv(world.population))).hexdigest()
    return digests


def _world(credentials: SandboxCredentials, level: NoiseLevel, customers: int = 300) -> World:
    return World(SandboxSettings(seed=42, customers=customers, noise=level), credentials)


def _population(level: NoiseLevel, size: int = 4000) -> Population:
    return Population(9, size, family_members=level.family_members, twins=level.twins)


def test_default_level_serves_the_records_main_served_when_hashed(
    sandbox_credentials: SandboxCredentials,
) -> None:
    world = World(SandboxSettings(seed=42, customers=300), sandbox_credentials)
    assert world.settings.noise == NOISE_LEVELS["default"]
    assert _digests(world) == MAIN_DIGESTS


@pytest.mark.parametrize("level", HEAVIER, ids=lambda level: level.name)
def test_each_level_gives_the_same_records_when_built_twice(
    sandbox_credentials: SandboxCredentials, level: NoiseLevel
) -> None:
    first = _digests(_world(sandbox_credentials, level))
    assert first == _digests(_world(sandbox_credentials, level))
    changed = {vendor for vendor, digest in first.items() if digest != MAIN_DIGESTS[vendor]}
    assert changed == set(MAIN_DIGESTS), "a heavier level should change every vendor's records"


@pytest.mark.parametrize("level", HEAVIER, ids=lambda level: level.name)
def test_families_share_surname_and_address_at_the_stated_rate_when_noise_is_heavier(
    level: NoiseLevel,
) -> None:
    population = _population(level)
    people = [population.person(i) for i in range(population.size)]
    members = [p for p in people if population.family_of(p.entity_id) is not None]
    assert 0.8 * level.family_members < len(members) / len(people) < 1.2 * level.family_members
    for member in members:
        family = people[population.family_of(member.entity_id)]  # type: ignore[index]
        assert (member.last_name, member.address) == (family.last_name, family.address)
        assert member.first_name.lower() != family.first_name.lower()
        assert member.email != family.email and member.phone_e164 != family.phone_e164
    households: dict[tuple[str, Address], list[str]] = {}
    for person in people:
        households.setdefault((person.last_name, person.address), []).append(person.first_name)
    assert sum(len(names) >= 3 for names in households.values()) > 0, "some have children"
    for names in households.values():
        assert len({name.lower() for name in names}) == len(names), names


@pytest.mark.parametrize("level", HEAVIER, ids=lambda level: level.name)
def test_twins_are_different_people_in_the_truth_when_noise_is_heavier(
    sandbox_credentials: SandboxCredentials, level: NoiseLevel
) -> None:
    world = _world(sandbox_credentials, level, customers=3000)
    population = world.population
    twins = {
        entity: population.family_of(entity)
        for entity in range(population.size)
        if population.family_of(entity) is not None and population.is_twin(entity)
    }
    assert 0.6 * level.twins < len(twins) / population.size < 1.4 * level.twins
    for twin, sibling in twins.items():
        a, b = population.person(twin), population.person(sibling)  # type: ignore[arg-type]
        assert (a.last_name, a.date_of_birth, a.address) == (
            b.last_name,
            b.date_of_birth,
            b.address,
        )
        assert a.first_name != b.first_name
        assert nickname(a.first_name) != b.first_name and nickname(b.first_name) != a.first_name
    # the clinic's records (no email, no phone) of both twins: the truth keeps them apart
    roster = world.roster("clinic")
    truth = {row.record_id: row.entity_id for row in VENDOR_TRUTH["clinic"](world)}
    entity_of_record = {
        world.record_id(PATIENT_PREFIX, position): registry_person(
            population, roster, position, level
        ).entity_id
        for position in range(len(roster))
    }
    assert truth == entity_of_record
    in_clinic = set(truth.values())
    both = [twin for twin, sibling in twins.items() if {twin, sibling} <= in_clinic]
    assert len(both) > 10


@pytest.mark.parametrize("level", HEAVIER, ids=lambda level: level.name)
def test_saas_records_swap_names_at_the_stated_rate_when_noise_is_heavier(
    level: NoiseLevel,
) -> None:
    population = _population(level)
    swapped = days_swapped = originals = 0
    for vendor in VENDORS:
        roster = Roster(population, vendor)
        for position in range(len(roster)):
            if roster.copy(position):
                continue  # duplicates take twice the damage
            originals += 1
            record = noisy_identity(population, roster, position, level)
            person = population.person(record.entity_id)
            swapped += (record.first_name or "").lower() == person.last_name.lower()
            days_swapped += _day_month_swapped(record.date_of_birth, person.date_of_birth)
    # a typo or a missing value on top of the swap hides a few
    assert 0.75 * level.names_swapped < swapped / originals < 1.1 * level.names_swapped
    assert days_swapped > 0


def test_records_miss_more_values_and_take_several_slips_when_noise_is_heavier() -> None:
    def damage(level: NoiseLevel) -> tuple[float, int]:
        population = _population(level, 2000)
        roster = Roster(population, "clinic")
        records = [registry_person(population, roster, p, level) for p in range(len(roster))]
        missing = sum(r.given_name is None for r in records) / len(records)
        # one slip is at most two edits (a transposition) from the true surname, the given
        # name (swapped) or its nickname
        several_slips = 0
        for record in records:
            person = population.person(record.entity_id)
            names = (person.last_name, person.first_name, nickname(person.first_name) or "")
            several_slips += record.surname is not None and all(
                _edits(record.surname, name) >= 3 for name in names
            )
        return missing, several_slips

    default, heavy, extreme = (damage(NOISE_LEVELS[name]) for name in NOISE_LEVELS)
    assert default[0] < heavy[0] < extreme[0]
    assert 0 == default[1] < heavy[1] < extreme[1]


def _day_month_swapped(seen: date | None, born: date) -> bool:
    return seen is not None and seen != born and (seen.month, seen.day) == (born.day, born.month)


def _edits(a: str, b: str) -> int:
    """Levenshtein distance."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def test_ground_truth_lists_the_same_records_at_every_level_when_asked_through_the_cli() -> None:
    def truth(*options: str) -> Result:
        arguments = ["sandbox", "ground-truth", "--vendors", "all", "--customers", "200"]
        return CliRunner().invoke(main, [*arguments, *options])

    default, extreme = truth(), truth("--noise", "extreme")
    assert default.exit_code == 0 and extreme.exit_code == 0, extreme.output
    assert extreme.output == default.output, "a level changes what records say, not which exist"
    refused = truth("--noise", "apocalyptic")
    assert refused.exit_code != 0 and "'apocalyptic' is not one of" in refused.output
