"""The sandbox's one population of true customers, generated deterministically from a seed.

Nothing is held per person: `Population.person(i)` rebuilds entity i from the seed on demand,
so a million customers cost no more memory than a hundred. Faker builds the value pools once.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from faker import Faker

from integration_platform_sandbox.noise import nickname

# The sandbox's data covers one fixed year so that partitions and tests are reproducible.
DATA_START = datetime(2025, 1, 1, tzinfo=UTC)
DATA_END = datetime(2026, 1, 1, tzinfo=UTC)
DATA_SPAN_SECONDS = int((DATA_END - DATA_START).total_seconds())

_MASK64 = (1 << 64) - 1


def mix64(*parts: int) -> int:
    """A 64-bit hash of integers (splitmix64 chained): cheap, stable across runs and platforms."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (part & _MASK64)) & _MASK64
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x


def unit_interval(*parts: int) -> float:
    """A deterministic number in [0, 1) from integers."""
    return mix64(*parts) / 2**64


def rng_for(*parts: int) -> random.Random:
    """A private random generator for one record, reproducible from its identifying integers."""
    return random.Random(mix64(*parts))


# Country → (Faker locale, billing currency, phone country code, share of the population).
COUNTRIES: dict[str, tuple[str, str, str, float]] = {
    "US": ("en_US", "USD", "1", 0.70),
    "GB": ("en_GB", "GBP", "44", 0.12),
    "DE": ("de_DE", "EUR", "49", 0.10),
    "CA": ("en_CA", "CAD", "1", 0.08),
}

FREE_EMAIL_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "proton.me",
    "fastmail.com",
    "aol.com",
)


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    city: str
    state: str
    postcode: str
    country: str


@dataclass(frozen=True, slots=True)
class Company:
    company_id: int
    name: str
    domain: str
    industry: str
    employee_count: int


@dataclass(frozen=True, slots=True)
class Person:
    """One true customer: the clean values every vendor's noisy record derives from."""

    entity_id: int
    first_name: str
    last_name: str
    email: str
    phone_country_code: str
    phone_national: str
    date_of_birth: date
    company_id: int
    address: Address
    signup_at: datetime
    plan: str
    national_id: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def phone_e164(self) -> str:
        return f"+{self.phone_country_code}{self.phone_national}"

    @property
    def currency(self) -> str:
        return COUNTRIES[self.address.country][1]


@dataclass(frozen=True, slots=True)
class _LocalePools:
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    places: tuple[tuple[str, str, str], ...]  # (city, state or region, postcode)


PLANS = ("starter", "pro", "business")
PLAN_WEIGHTS = (0.55, 0.35, 0.10)
INDUSTRIES = (
    "software",
    "retail",
    "finance",
    "healthcare",
    "manufacturing",
    "education",
    "media",
    "logistics",
)


class Population:
    """`size` true customers derived from `seed`; person i is computed, never stored."""

    def __init__(
        self, seed: int, size: int, family_members: float = 0.0, twins: float = 0.0
    ) -> None:
        if size < 1:
            raise ValueError(f"population size must be at least 1, got {size}")
        if not 0.0 <= twins <= family_members < 1.0:
            raise ValueError(
                f"need 0 <= twins <= family_members < 1, got {twins} and {family_members}"
            )
        self.seed = seed
        self.size = size
        self.family_members = family_members
        self.twins = twins
        self._countries = tuple(COUNTRIES)
        self._country_cdf = _cdf([COUNTRIES[c][3] for c in self._countries])
        self._companies: dict[int, Company] = {}

    @cached_property
    def _pools(self) -> dict[str, _LocalePools]:
        pools = {}
        for index, (country, (locale, _currency, _cc, _share)) in enumerate(COUNTRIES.items()):
            fake = Faker(locale)
            fake.seed_instance(mix64(self.seed, 0xF00D, index) & 0xFFFFFFFF)
            pools[country] = _LocalePools(
                first_names=_unique(fake.first_name, 250),
                last_names=_unique(fake.last_name, 500),
                streets=_unique(fake.street_name, 300),
                places=tuple(
                    (fake.city(), _region(fake, country), fake.postcode()) for _ in range(200)
                ),
            )
        return pools

    @cached_property
    def company_count(self) -> int:
        return max(10, min(20_000, self.size // 25))

    @cached_property
    def _company_faker(self) -> Faker:
        return Faker("en_US")

    def company(self, company_id: int) -> Company:
        cached = self._companies.get(company_id)
        if cached is not None:
            return cached
        fake = self._company_faker
        fake.seed_instance(mix64(self.seed, 0xC0, company_id) & 0xFFFFFFFF)
        name = fake.company()
        slug = "".join(ch for ch in name.lower() if ch.isalnum())[:24] or f"company{company_id}"
        r = rng_for(self.seed, 0xC1, company_id)
        company = Company(
            company_id=company_id,
            name=name,
            domain=f"{slug}{company_id}.example.com",
            industry=r.choice(INDUSTRIES),
            employee_count=int(10 ** r.uniform(1, 4.5)),
        )
        self._companies[company_id] = company  # bounded by company_count
        return company

    def person(self, entity_id: int) -> Person:
        if not 0 <= entity_id < self.size:
            raise IndexError(f"entity {entity_id} outside population of {self.size}")
        family = self.family_of(entity_id)
        household = [] if family is None else [self.person(k) for k in range(family, entity_id)]
        head = household[0] if household else None
        # The draws from r keep their order whatever the family: the default noise level (no
        # families) must give exactly the people it always gave.
        r = rng_for(self.seed, 0x11, entity_id)
        country = self._countries[_pick(self._country_cdf, r.random())]
        if head is not None:
            country = head.address.country
        pools = self._pools[country]
        first = r.choice(pools.first_names)
        last = r.choice(pools.last_names)
        city, state, postcode = r.choice(pools.places)
        address = Address(
            street=f"{r.randint(1, 9999)} {r.choice(pools.streets)}",
            city=city,
            state=state,
            postcode=postcode,
            country=country,
        )
        company_id = r.randrange(self.company_count)
        if head is not None:
            first = _another_first_name(first, [p.first_name for p in household], pools)
            last, address = head.last_name, head.address
        email = _email(first, last, entity_id, r, self.company(company_id).domain)
        # Multiplying by a prime coprime to 10 keeps national numbers unique per person.
        phone_national = (
            f"{r.randint(2, 9)}{r.randint(0, 99):02d}{(entity_id * 7919 + 1234567) % 10**7:07d}"
        )
        date_of_birth = date(1950, 1, 1) + timedelta(days=r.randrange(365 * 55))
        if head is not None and self.is_twin(entity_id):
            date_of_birth = head.date_of_birth
        return Person(
            entity_id=entity_id,
            first_name=first,
            last_name=last,
            email=email,
            phone_country_code=COUNTRIES[country][2],
            phone_national=phone_national,
            date_of_birth=date_of_birth,
            company_id=company_id,
            address=address,
            signup_at=DATA_START + timedelta(seconds=r.randrange(DATA_SPAN_SECONDS)),
            plan=PLANS[_pick(_cdf(PLAN_WEIGHTS), r.random())],
            national_id=self._national_id(entity_id),
        )

    def family_of(self, entity_id: int) -> int | None:
        """The person whose household `entity_id` joined (surname and address), or None.

        A household is a person who joined none and the people right after them who did: a
        joiner's family is the nearest earlier person who is not a joiner, so finding it is a
        short walk back, and a household's people are neighbours in entity order.
        """
        if not self._joins_family(entity_id):
            return None
        family = entity_id - 1
        while self._joins_family(family):
            family -= 1
        return family

    def is_twin(self, entity_id: int) -> bool:
        """Whether `entity_id` is the twin of the person whose family they joined."""
        return self._family_roll(entity_id) < self.twins

    def _joins_family(self, entity_id: int) -> bool:
        return entity_id > 0 and self._family_roll(entity_id) < self.family_members

    def _family_roll(self, entity_id: int) -> float:
        if not self.family_members:
            return 1.0
        return unit_interval(self.seed, 0x15, entity_id)

    def _national_id(self, entity_id: int) -> str:
        """Nine digits, unique per person: an affine map mod 10**9 whose multiplier is coprime
        to 10 is a bijection. (Not drawn from the person's generator, so adding it changed
        no other value of the population.)"""
        offset = mix64(self.seed, 0x13) % 10**9
        return f"{(entity_id * 738_219_517 + offset) % 10**9:09d}"

    def moved_address(self, entity_id: int) -> Address:
        """Where the person lived before (or after) a move: same country, different place."""
        r = rng_for(self.seed, 0x12, entity_id)
        country = self.person(entity_id).address.country
        pools = self._pools[country]
        city, state, postcode = r.choice(pools.places)
        return Address(
            f"{r.randint(1, 9999)} {r.choice(pools.streets)}", city, state, postcode, country
        )


# The columns of the sandbox's `/_sandbox/people`: each person's clean values, before any
# vendor's noise (phone in E.164, date of birth ISO 8601).
PEOPLE_COLUMNS = (
    "entity_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "street",
    "city",
    "state",
    "postcode",
    "country",
)


def true_people(population: Population) -> Iterator[tuple[str, ...]]:
    """Every person of the population as PEOPLE_COLUMNS."""
    for entity_id in range(population.size):
        person = population.person(entity_id)
        address = person.address
        yield (
            str(entity_id),
            person.first_name,
            person.last_name,
            person.email,
            person.phone_e164,
            person.date_of_birth.isoformat(),
            address.street,
            address.city,
            address.state,
            address.postcode,
            address.country,
        )


def true_people_csv(population: Population) -> Iterator[bytes]:
    """`true_people` as CSV lines, header first (quoted where a value needs it)."""
    for row in (PEOPLE_COLUMNS, *true_people(population)):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(row)
        yield buffer.getvalue().encode()


def _another_first_name(first: str, taken: list[str], pools: _LocalePools) -> str:
    """`first`, or the next name of the pool when a member of the household has it (or its
    nickname): a family's members, twins above all, are told apart by their first names."""
    names = pools.first_names
    index = names.index(first)
    while any(_same_first_name(names[index], other) for other in taken):
        index = (index + 1) % len(names)
    return names[index]


def _same_first_name(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a == b or (nickname(a) or "").lower() == b or (nickname(b) or "").lower() == a


def _email(first: str, last: str, entity_id: int, r: random.Random, work_domain: str) -> str:
    f, la = _ascii(first), _ascii(last)
    local = r.choice((f"{f}.{la}", f"{f[0]}{la}", f"{f}{la[0]}", f"{f}_{la}", f"{la}.{f}"))
    domain = work_domain if r.random() < 0.3 else r.choice(FREE_EMAIL_DOMAINS)
    # The entity id keeps every true email unique, as real mailboxes are.
    return f"{local}{entity_id}@{domain}".lower()


def _ascii(text: str) -> str:
    table = str.maketrans(
        {
            "ä": "ae",
            "ö": "oe",
            "ü": "ue",
            "ß": "ss",
            "é": "e",
            "è": "e",
            "ë": "e",
            "ï": "i",
            "ç": "c",
            "'": "",
            " ": "",
            "-": "",
        }
    )
    kept = (ch for ch in text.lower().translate(table) if ch.isascii() and ch.isalnum())
    return "".join(kept) or "x"


def _region(fake: Faker, country: str) -> str:
    if country == "US":
        return str(fake.state_abbr(include_territories=False))
    if country == "CA":
        return str(fake.province_abbr())
    if country == "DE":
        return str(fake.state())
    return str(fake.county())


def _unique(make: object, count: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < count and attempts < count * 20:
        seen[str(make())] = None  # type: ignore[operator]
        attempts += 1
    return tuple(seen)


def _cdf(weights: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    total, acc, out = sum(weights), 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    return tuple(out)


def _pick(cdf: tuple[float, ...], u: float) -> int:
    for index, bound in enumerate(cdf):
        if u < bound:
            return index
    return len(cdf) - 1
