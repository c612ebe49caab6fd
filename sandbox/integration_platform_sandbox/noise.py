"""The ways real systems garble a person's identity: typos, nicknames, case, aliases, formats.

Every function takes the record's private `random.Random`, so the same seed gives the same noise.
"""

from __future__ import annotations

import random
import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the population draws first names through `nickname`
    from integration_platform_sandbox.population import Address, Person

NICKNAMES = {
    "robert": "Bob",
    "william": "Bill",
    "richard": "Dick",
    "james": "Jim",
    "john": "Jack",
    "michael": "Mike",
    "christopher": "Chris",
    "matthew": "Matt",
    "joseph": "Joe",
    "daniel": "Dan",
    "anthony": "Tony",
    "thomas": "Tom",
    "steven": "Steve",
    "edward": "Ed",
    "benjamin": "Ben",
    "samuel": "Sam",
    "alexander": "Alex",
    "nicholas": "Nick",
    "jonathan": "Jon",
    "timothy": "Tim",
    "andrew": "Andy",
    "david": "Dave",
    "patrick": "Pat",
    "gregory": "Greg",
    "jeffrey": "Jeff",
    "kenneth": "Ken",
    "ronald": "Ron",
    "donald": "Don",
    "elizabeth": "Liz",
    "jennifer": "Jen",
    "katherine": "Kate",
    "kathryn": "Kate",
    "margaret": "Maggie",
    "patricia": "Patty",
    "rebecca": "Becky",
    "susan": "Sue",
    "deborah": "Debbie",
    "jessica": "Jess",
    "stephanie": "Steph",
    "victoria": "Vicky",
    "christine": "Chris",
    "samantha": "Sam",
    "alexandra": "Alex",
    "abigail": "Abby",
    "kimberly": "Kim",
    "cynthia": "Cindy",
    "pamela": "Pam",
    "barbara": "Barb",
    "jacqueline": "Jackie",
    "theodore": "Ted",
    "frederick": "Fred",
    "lawrence": "Larry",
}

STREET_ABBREVIATIONS = {
    "Street": "St",
    "Avenue": "Ave",
    "Road": "Rd",
    "Drive": "Dr",
    "Lane": "Ln",
    "Boulevard": "Blvd",
    "Court": "Ct",
    "Place": "Pl",
    "Square": "Sq",
    "Terrace": "Ter",
    "Straße": "Str.",
    "Strasse": "Str.",
    "Crescent": "Cres",
}


def nickname(first_name: str) -> str | None:
    return NICKNAMES.get(first_name.lower())


def typo(text: str, r: random.Random) -> str:
    """One keyboard slip: a dropped, doubled, swapped or replaced letter."""
    if len(text) < 3:
        return text
    i = r.randrange(1, len(text) - 1)
    kind = r.randrange(4)
    if kind == 0:
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i] + text[i:]
    if kind == 2:
        return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]
    replacement = r.choice(string.ascii_lowercase)
    return text[:i] + (replacement.upper() if text[i].isupper() else replacement) + text[i + 1 :]


def typos(text: str, r: random.Random, most: int) -> str:
    """One to `most` keyboard slips (exactly one, and the same draws as `typo`, when most is 1)."""
    count = 1 if most == 1 else r.randint(1, most)
    for _ in range(count):
        text = typo(text, r)
    return text


def recase(text: str, r: random.Random) -> str:
    return r.choice((text.upper(), text.lower(), text.title()))


def email_variant(email: str, r: random.Random, alias_tag: str) -> str:
    """Case changes, plus-aliases, dotted Gmail and the occasional typo."""
    local, _, domain = email.partition("@")
    roll = r.random()
    if roll < 0.35:
        return f"{local}+{alias_tag}@{domain}"
    if roll < 0.55 and domain == "gmail.com" and len(local) > 3:
        cut = r.randrange(1, len(local) - 1)
        return f"{local[:cut]}.{local[cut:]}@{domain}".replace("..", ".")
    if roll < 0.85:
        return recase(local, r) + "@" + (domain.upper() if r.random() < 0.3 else domain)
    return f"{typo(local, r)}@{domain}"


def phone_format(person: Person, r: random.Random) -> str:
    """The same number as different systems store it."""
    n, cc = person.phone_national, person.phone_country_code
    return r.choice(
        (
            f"+{cc}{n}",
            f"+{cc} {n[:3]} {n[3:6]} {n[6:]}",
            f"({n[:3]}) {n[3:6]}-{n[6:]}",
            f"{n[:3]}.{n[3:6]}.{n[6:]}",
            f"{n[:3]}-{n[3:6]}-{n[6:]}",
            f"00{cc} {n}",
            f"{cc}-{n}",
        )
    )


def street_variant(street: str, r: random.Random) -> str:
    if r.random() < 0.5:
        for long, short in STREET_ABBREVIATIONS.items():
            if street.endswith(long):
                return street[: -len(long)] + short
    return recase(street, r) if r.random() < 0.2 else street


def postcode_variant(address: Address, r: random.Random) -> str:
    code = address.postcode
    if address.country == "US" and r.random() < 0.3:
        return f"{code}-{r.randint(1000, 9999)}"
    if address.country in ("GB", "CA") and r.random() < 0.5:
        return code.replace(" ", "").lower() if r.random() < 0.5 else code.replace(" ", "")
    return code
