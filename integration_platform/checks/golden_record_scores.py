"""Field-level accuracy of the golden records (marts.dim_customers) against the sandbox's true
people, computed with polars.

Each golden record stands for the true person most of its records are (the record-level
ground truth; ties go to the smallest entity id). A field is right when the golden value and
the person's clean value are the same after the normalization here, written apart from dbt's
on purpose (mailbox: lower case, no plus-alias, no Gmail dots; phone: the last ten digits;
names: accents folded, letters only; address: street with short street types, and postcode,
ZIP+4 cut), so that the check does not grade dbt's normalizers with themselves. Accuracy per
field = right / golden records that have the field; a field no record of the customer has is
not scored.
"""

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import httpx
import polars as pl

from integration_platform.assets.resources import WarehouseResource
from integration_platform.client_ids import DEMO_CLIENT_ID

GOLDEN_QUERY = """
select customer_id::varchar as customer_id, record_keys, email, phone, first_name, last_name,
    date_of_birth::varchar as date_of_birth, address_line, postcode
from marts.dim_customers
where client_id = ?
"""
PEOPLE_PATH = "/_sandbox/people"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# The fields scored, each with the golden columns and the true people's columns it compares.
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "name": (("first_name", "last_name"), ("first_name", "last_name")),
    "email": (("email",), ("email",)),
    "phone": (("phone",), ("phone",)),
    "address": (("address_line", "postcode"), ("street", "postcode")),
    "date_of_birth": (("date_of_birth",), ("date_of_birth",)),
}
STREET_TYPES = {
    "street": "st",
    "avenue": "ave",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "boulevard": "blvd",
    "court": "ct",
    "place": "pl",
    "square": "sq",
    "terrace": "ter",
    "crescent": "cres",
}
_FOLDED = str.maketrans({"ß": "ss", "ø": "o", "ł": "l", "æ": "ae", "œ": "oe", "đ": "d"})


class PeopleUnavailable(Exception):
    """The source does not serve the sandbox's true people."""


@dataclass(frozen=True)
class FieldAccuracy:
    """Per field: golden records scored (that have the field) and how many are right."""

    scored: dict[str, int]
    right: dict[str, int]

    def accuracy(self, field: str) -> float:
        return self.right[field] / self.scored[field] if self.scored[field] else 1.0

    def lowest(self) -> float:
        return min(self.accuracy(field) for field in self.scored)

    def metadata(self) -> dict[str, float | int]:
        numbers: dict[str, float | int] = {}
        for field in self.scored:
            numbers[f"golden_{field}_accuracy"] = round(self.accuracy(field), 6)
            numbers[f"golden_{field}_scored"] = self.scored[field]
        return numbers

    def summary(self) -> str:
        return ", ".join(
            f"{field} {self.accuracy(field):.4f} ({self.scored[field]})" for field in self.scored
        )


def fold(text: str) -> str:
    """Lower case, accents folded (and ß, ø, ...), so that only letter identity is left."""
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_FOLDED))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def name_key(text: str) -> str:
    return re.sub(r"[^a-z]", "", fold(text))


def mailbox_key(text: str) -> str:
    local, _, domain = text.strip().lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local = local.replace(".", "")
    return f"{local}@{domain}"


def phone_key(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)[-10:]


def street_key(text: str) -> str:
    words = " ".join(re.findall(r"[a-z0-9]+", fold(text)))
    words = re.sub(r"strasse\b", "str", words)
    for long, short in STREET_TYPES.items():
        words = re.sub(rf"\b{long}\b", short, words)
    return words.replace(" ", "")


def postcode_key(text: str) -> str:
    text = text.strip()
    if re.fullmatch(r"[0-9]{5}-[0-9]{4}", text):
        return text[:5]
    return re.sub(r"[^0-9A-Z]", "", text.upper())


def _same(text: str) -> str:
    return text


KEYS: dict[str, Callable[[str], str]] = {
    "first_name": name_key,
    "last_name": name_key,
    "email": mailbox_key,
    "phone": phone_key,
    "address_line": street_key,
    "street": street_key,
    "postcode": postcode_key,
    "date_of_birth": _same,
}


def _key(column: str, kind: str) -> pl.Expr:
    """The comparable form of a column, by the key of `kind` (see KEYS); null stays null."""
    return pl.col(column).cast(pl.String).map_elements(KEYS[kind], return_dtype=pl.String)


def person_of_customer(golden: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """customer_id → entity_id: the person most of the golden record's records are (ties:
    the smallest entity id, compared as text)."""
    return (
        golden.select("customer_id", pl.col("record_keys").alias("record_key"))
        .explode("record_key")
        .join(truth.select("record_key", pl.col("entity_id").cast(pl.String)), on="record_key")
        .group_by("customer_id", "entity_id")
        .len()
        .sort(["customer_id", "len", "entity_id"], descending=[False, True, False])
        .unique("customer_id", keep="first", maintain_order=True)
        .select("customer_id", "entity_id")
    )


def field_accuracy(
    golden: pl.DataFrame, truth: pl.DataFrame, people: pl.DataFrame
) -> FieldAccuracy:
    """golden: customer_id, record_keys (as the sandbox names records) and the FIELDS' golden
    columns; truth: record_key, entity_id; people: entity_id and the FIELDS' true columns."""
    true_values = people.select(
        pl.col("entity_id").cast(pl.String),
        *(
            pl.col(column).alias(f"true__{column}")
            for column in people.columns
            if column != "entity_id"
        ),
    )
    matched = golden.join(person_of_customer(golden, truth), on="customer_id").join(
        true_values, on="entity_id"
    )
    scored, right = {}, {}
    for field, (golden_columns, true_columns) in FIELDS.items():
        present = matched.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in golden_columns))
        same = pl.all_horizontal(
            _key(mine, mine) == _key(f"true__{theirs}", theirs)
            for mine, theirs in zip(golden_columns, true_columns, strict=True)
        )
        scored[field] = present.height
        right[field] = present.filter(same).height
    return FieldAccuracy(scored, right)


def true_people(base_url: str, client: httpx.Client) -> pl.DataFrame:
    """The sandbox's true people (`/_sandbox/people`), every column as text."""
    try:
        response = client.get(base_url.rstrip("/") + PEOPLE_PATH)
    except httpx.HTTPError as exc:
        raise PeopleUnavailable(f"{base_url} did not answer {PEOPLE_PATH}: {exc}") from exc
    if response.status_code != 200:
        raise PeopleUnavailable(
            f"{base_url} has no {PEOPLE_PATH} (HTTP {response.status_code}): not the sandbox"
        )
    return pl.read_csv(response.content, infer_schema=False)


def read_golden(warehouse: WarehouseResource, client_id: str = DEMO_CLIENT_ID) -> pl.DataFrame:
    """One client's golden records from the published copy (or, unpublished, under the lock)."""
    with warehouse.read_only() as connection:
        return golden_records(connection, client_id)


def golden_records(
    connection: duckdb.DuckDBPyConnection, client_id: str = DEMO_CLIENT_ID
) -> pl.DataFrame:
    """One client's golden records, record keys named as the sandbox names records
    (`source:endpoint:id`); closes the connection."""
    try:
        golden: pl.DataFrame = connection.sql(GOLDEN_QUERY, params=[client_id]).pl()
    finally:
        connection.close()
    return golden.with_columns(
        pl.col("record_keys").list.eval(pl.element().str.strip_prefix(f"{client_id}:"))
    )
