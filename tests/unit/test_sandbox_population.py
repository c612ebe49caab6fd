"""The population and its projections are deterministic, noisy in the documented ways, and lazy."""

from __future__ import annotations

import csv
from datetime import date

import pytest

from integration_platform_sandbox.chaos import ChaosConfigError, parse_chaos
from integration_platform_sandbox.identity import noisy_identity
from integration_platform_sandbox.population import PEOPLE_COLUMNS, Population, true_people_csv
from integration_platform_sandbox.registry import registry_person
from integration_platform_sandbox.roster import (
    REGISTRY_VENDORS,
    VENDORS,
    ChildIndex,
    Roster,
    Timeline,
)
from integration_platform_sandbox.server import parse_vendors, vendor_urls


def test_same_seed_gives_identical_people_when_built_twice() -> None:
    a, b = Population(11, 500), Population(11, 500)
    assert [a.person(i) for i in range(0, 500, 7)] == [b.person(i) for i in range(0, 500, 7)]


def test_different_seeds_give_different_people_when_built() -> None:
    a, b = Population(11, 100), Population(12, 100)
    assert sum(a.person(i) == b.person(i) for i in range(100)) == 0


def test_true_emails_and_phones_are_unique_when_people_share_names() -> None:
    population = Population(3, 3000)
    people = [population.person(i) for i in range(3000)]
    assert len({p.email for p in people}) == 3000
    assert len({p.phone_e164 for p in people}) == 3000
    assert len({p.national_id for p in people}) == 3000
    assert len({p.full_name for p in people}) < 3000, "common names should collide"


def test_every_person_lives_in_at_least_one_vendor_when_rosters_are_built() -> None:
    population = Population(5, 2000)
    rosters = {v: Roster(population, v) for v in VENDORS}
    members = {v: {r.entity(p) for p in range(len(r))} for v, r in rosters.items()}
    everyone = set().union(*members.values())
    assert everyone == set(range(2000))
    only_one = [e for e in everyone if sum(e in m for m in members.values()) == 1]
    assert only_one, "some customers should exist in exactly one vendor"


def test_noise_damages_identities_in_each_documented_way_when_projected() -> None:
    population = Population(9, 2000)
    roster = Roster(population, "crm")
    seen = {"nickname": 0, "email_changed": 0, "email_missing": 0, "moved": 0, "phone_format": 0}
    for position in range(len(roster)):
        ident = noisy_identity(population, roster, position)
        person = population.person(ident.entity_id)
        seen["nickname"] += ident.first_name not in (None, person.first_name) and bool(
            ident.first_name and ident.first_name.lower() != person.first_name.lower()
        )
        seen["email_changed"] += ident.email is not None and ident.email != person.email
        seen["email_missing"] += ident.email is None
        seen["moved"] += ident.address is not None and ident.address.city not in (
            person.address.city,
            person.address.city.upper(),
            person.address.city.lower(),
            person.address.city.title(),
        )
        seen["phone_format"] += ident.phone is not None and ident.phone != person.phone_e164
    assert all(count > 10 for count in seen.values()), seen


def test_timeline_filters_are_exact_position_ranges_when_asked_for_a_window() -> None:
    timeline = Timeline(1000, seed=1, salt=2)
    stamps = [timeline.at(p) for p in range(1000)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 1000
    window = timeline.positions_between(stamps[100], stamps[200])
    assert window == range(100, 200)


def test_children_are_found_from_their_parent_when_indexed() -> None:
    index = ChildIndex(children=500, parents=40, seed=1, salt=3)
    rebuilt = sorted(child for parent in range(40) for child in index.children_of(parent))
    assert rebuilt == list(range(500))
    assert all(index.parent_of(c) == 5 for c in index.children_of(5))


def test_a_million_people_cost_no_memory_until_asked_for_when_the_population_is_large() -> None:
    population = Population(1, 1_000_000)
    assert population.person(999_999).entity_id == 999_999


def test_unknown_chaos_knob_is_named_when_parsing_settings() -> None:
    with pytest.raises(ChaosConfigError, match="dropp"):
        parse_chaos("light", ["dropp=0.1"])
    with pytest.raises(ChaosConfigError, match="unknown chaos profile"):
        parse_chaos("apocalypse")
    assert parse_chaos("heavy", ["drop=0.5"]).drop == 0.5


def test_registry_records_take_febrl_style_damage_when_projected() -> None:
    population = Population(9, 3000)
    roster = Roster(population, "clinic")
    seen = dict.fromkeys(
        (
            "swapped",
            "name_typo",
            "id_missing",
            "id_typo",
            "no_real_date",
            "day_month_swapped",
            "number_missing",
            "duplicate",
        ),
        0,
    )
    for position in range(len(roster)):
        record = registry_person(population, roster, position)
        person = population.person(record.entity_id)
        born = person.date_of_birth.strftime("%Y%m%d")
        seen["duplicate"] += roster.copy(position)
        seen["swapped"] += (record.given_name, record.surname) == (
            person.last_name,
            person.first_name,
        )
        seen["name_typo"] += record.surname not in (None, person.last_name, person.first_name)
        seen["id_missing"] += record.national_id is None
        seen["id_typo"] += record.national_id not in (None, person.national_id)
        seen["no_real_date"] += record.birth_digits is not None and not _real_date(
            record.birth_digits
        )
        seen["day_month_swapped"] += record.birth_digits == born[:4] + born[6:] + born[4:6] != born
        seen["number_missing"] += record.street_number is None
    assert all(count > 5 for count in seen.values()), seen


def _real_date(digits: str) -> bool:
    try:
        date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return False
    return True


def test_registry_knows_only_part_of_the_population_when_rosters_are_built() -> None:
    population = Population(5, 2000)
    members = {
        vendor: {roster.entity(p) for p in range(len(roster))}
        for vendor, roster in ((v, Roster(population, v)) for v in REGISTRY_VENDORS)
    }
    both = members["clinic"] & members["insurer"]
    assert 0.4 * 2000 < len(both) < 0.6 * 2000
    assert len(members["clinic"] | members["insurer"]) < 2000, "not everyone is a patient"


def test_vendors_keep_their_port_offsets_when_only_some_are_served() -> None:
    assert vendor_urls("127.0.0.1", 8700) == {
        "crm": "http://127.0.0.1:8700",
        "billing": "http://127.0.0.1:8701",
        "support": "http://127.0.0.1:8702",
        "analytics": "http://127.0.0.1:8703",
    }
    assert vendor_urls("127.0.0.1", 9000, parse_vendors("registry")) == {
        "clinic": "http://127.0.0.1:9004",
        "insurer": "http://127.0.0.1:9005",
    }
    assert parse_vendors("insurer,crm") == ("crm", "insurer")
    assert parse_vendors("saas") == VENDORS
    with pytest.raises(ValueError, match="unknown vendor 'hospital'"):
        parse_vendors("crm,hospital")


def test_true_people_csv_holds_each_person_clean_when_read_back() -> None:
    population = Population(7, 30)
    lines = b"".join(true_people_csv(population)).decode().splitlines()
    rows = list(csv.DictReader(lines))
    assert tuple(rows[0]) == PEOPLE_COLUMNS
    assert len(rows) == 30
    person = population.person(12)
    assert rows[12]["entity_id"] == "12"
    assert (rows[12]["first_name"], rows[12]["last_name"]) == (person.first_name, person.last_name)
    assert rows[12]["street"] == person.address.street
    assert rows[12]["phone"] == person.phone_e164
    assert rows[12]["date_of_birth"] == person.date_of_birth.isoformat()
