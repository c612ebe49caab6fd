"""Field-level accuracy of golden records against true people, on a small example worked out
by hand (each customer's person is the one most of its records are)."""

from __future__ import annotations

import polars as pl
import pytest

from integration_platform.checks.golden_record_scores import field_accuracy

# A: person 1, every field right (accents, Gmail dots, street types, E.164 normalize away).
# B: records of persons 2, 2, 3 → person 2; first name typo (wrong), plus-alias (right),
#    no phone (not scored), "Hauptstraße" as "hauptstr" (right), wrong birth date.
# C: a record the truth does not know → not scored at all.
# D: person 4; no first name (name not scored), a nickname email (wrong), ZIP+4 (right).
GOLDEN = pl.DataFrame(
    {
        "customer_id": ["A", "B", "C", "D"],
        "record_keys": [
            ["crm:c:1", "billing:c:1"],
            ["crm:c:2", "crm:c:3", "billing:c:2"],
            ["billing:c:9"],
            ["analytics:u:4"],
        ],
        "email": [
            "robertmuller1@gmail.com",
            "anna.schmidt2+crm@example.com",
            "x@example.com",
            "dave4@yahoo.com",
        ],
        "phone": ["4155550100", None, "2025550100", None],
        "first_name": ["robert", "ana", "x", None],
        "last_name": ["muller", "schmidt", "y", "kennedy"],
        "date_of_birth": ["1980-02-03", "1990-01-01", None, None],
        "address_line": ["12 main st", "5 hauptstr", None, "7 elm rd"],
        "postcode": ["94105", "10115", None, "02139-1234"],
    }
)
TRUTH = pl.DataFrame(
    {
        "record_key": [
            "crm:c:1",
            "billing:c:1",
            "crm:c:2",
            "crm:c:3",
            "billing:c:2",
            "analytics:u:4",
        ],
        "entity_id": ["1", "1", "2", "2", "3", "4"],
    }
)
PEOPLE = pl.DataFrame(
    {
        "entity_id": ["1", "2", "3", "4"],
        "first_name": ["Robert", "Anna", "Bea", "David"],
        "last_name": ["Müller", "Schmidt", "Bauer", "Kennedy"],
        "email": [
            "robert.muller1@gmail.com",
            "anna.schmidt2@example.com",
            "bea3@example.com",
            "david4@yahoo.com",
        ],
        "phone": ["+14155550100", "+49301234567", "+493099999999", "+16175550100"],
        "date_of_birth": ["1980-02-03", "1991-01-01", "1970-01-01", "1960-06-06"],
        "street": ["12 Main Street", "5 Hauptstraße", "1 Ring", "7 Elm Road"],
        "city": ["San Francisco", "Berlin", "Berlin", "Cambridge"],
        "state": ["CA", "Berlin", "Berlin", "MA"],
        "postcode": ["94105", "10115", "10117", "02139"],
        "country": ["US", "DE", "DE", "US"],
    }
)


def test_field_accuracy_matches_the_hand_count_when_some_golden_values_are_wrong() -> None:
    accuracy = field_accuracy(GOLDEN, TRUTH, PEOPLE)
    assert accuracy.scored == {
        "name": 2,
        "email": 3,
        "phone": 1,
        "address": 3,
        "date_of_birth": 2,
    }
    assert accuracy.right == {
        "name": 1,
        "email": 2,
        "phone": 1,
        "address": 3,
        "date_of_birth": 1,
    }
    assert accuracy.accuracy("email") == pytest.approx(2 / 3)
    assert accuracy.lowest() == pytest.approx(0.5)
    assert accuracy.metadata()["golden_name_accuracy"] == 0.5


def test_field_accuracy_is_perfect_and_empty_when_no_golden_record_is_known() -> None:
    accuracy = field_accuracy(GOLDEN.filter(pl.col("customer_id") == "C"), TRUTH, PEOPLE)
    assert set(accuracy.scored.values()) == {0}
    assert accuracy.lowest() == 1.0
