"""Schema contracts per endpoint: what each record must look like, and how a batch drifted.

A contract is declared in the spec, inferred from the first load that has records, or both
(declared fields win). Fields missing from records or arriving with another JSON type break
it: the drift check fails with error severity, and the load is held (or such records become
dead letters, for push sources) unless the user accepts the new shape. Fields the contract
has never seen only warn, and are then added to it as optional.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from integration_platform.specs.models import ContractField, SchemaContract

# DuckDB's json_type() names onto the spec's field types.
JSON_TYPES = {
    "BIGINT": "integer",
    "UBIGINT": "integer",
    "HUGEINT": "integer",
    "DOUBLE": "number",
    "VARCHAR": "string",
    "BOOLEAN": "boolean",
    "OBJECT": "object",
    "ARRAY": "array",
}
IMPLIED = {"number": {"number", "integer"}, "any": set(JSON_TYPES.values())}


@dataclass(frozen=True)
class FieldRule:
    types: frozenset[str]
    required: bool

    def allows(self, json_type: str) -> bool:
        return json_type in self.types

    def as_dict(self) -> dict[str, Any]:
        return {"types": sorted(self.types), "required": self.required}


Contract = dict[str, FieldRule]


@dataclass(frozen=True)
class ObservedField:
    present: int
    types: frozenset[str]  # non-null types seen


@dataclass
class Observed:
    records: int
    fields: dict[str, ObservedField]

    def schema_hash(self) -> str:
        canonical = sorted((name, sorted(f.types)) for name, f in self.fields.items())
        return hashlib.sha256(orjson.dumps(canonical)).hexdigest()[:16]


@dataclass
class DriftReport:
    """How one batch differs from the contract."""

    disappeared: dict[str, int] = field(default_factory=dict)  # field → records lacking it
    retyped: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)  # old → likely new name
    new_fields: dict[str, list[str]] = field(default_factory=dict)

    @property
    def breaking(self) -> bool:
        return bool(self.disappeared or self.retyped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "disappeared": self.disappeared,
            "retyped": self.retyped,
            "renamed": self.renamed,
            "new_fields": self.new_fields,
        }

    def summary(self) -> str:
        parts = [
            f"field {name!r} missing from {count} record(s)"
            + (f" (renamed to {self.renamed[name]!r}?)" if name in self.renamed else "")
            for name, count in self.disappeared.items()
        ]
        parts += [
            f"field {name!r} is now {'/'.join(t['observed'])}, contract says "
            f"{'/'.join(t['expected'])}"
            for name, t in self.retyped.items()
        ]
        parts += [
            f"new field {name!r} ({'/'.join(types) or 'null'})"
            for name, types in self.new_fields.items()
        ]
        return "; ".join(parts) or "matches the contract"


def declared(spec: SchemaContract) -> Contract:
    contract: Contract = {}
    for name, rule in spec.fields.items():
        rule = rule if isinstance(rule, ContractField) else ContractField(type=rule)  # shorthand
        kinds = [rule.type] if isinstance(rule.type, str) else list(rule.type)
        types: set[str] = set()
        for kind in kinds:
            types |= IMPLIED.get(kind, {kind})
        contract[name] = FieldRule(frozenset(types), rule.required)
    return contract


def inferred(observed: Observed) -> Contract:
    """Required: present in every record. Types: every non-null type seen."""
    return {
        name: FieldRule(f.types or frozenset(JSON_TYPES.values()), f.present == observed.records)
        for name, f in observed.fields.items()
    }


def initial_contract(spec: SchemaContract, observed: Observed) -> Contract:
    base = inferred(observed) if spec.mode == "infer" else {}
    return {**base, **declared(spec)}


def compare(contract: Contract, observed: Observed) -> DriftReport:
    report = DriftReport()
    for name, rule in contract.items():
        seen = observed.fields.get(name)
        present = seen.present if seen else 0
        if rule.required and present < observed.records:
            report.disappeared[name] = observed.records - present
        if seen and not seen.types <= rule.types:
            report.retyped[name] = {"expected": sorted(rule.types), "observed": sorted(seen.types)}
    for name, seen in observed.fields.items():
        if name not in contract:
            report.new_fields[name] = sorted(seen.types)
    for old in report.disappeared:
        for new, types in report.new_fields.items():
            if set(types) & contract[old].types:
                report.renamed[old] = new
                break
    return report


def evolve(contract: Contract, report: DriftReport) -> Contract:
    """Additive change is fine: new fields join the contract as optional."""
    evolved = dict(contract)
    for name, types in report.new_fields.items():
        evolved[name] = FieldRule(frozenset(types) or frozenset(JSON_TYPES.values()), False)
    return evolved


def accept(contract: Contract, report: DriftReport) -> Contract:
    """The contract widened to the shape a batch arrived in: a field that went missing becomes
    optional, a retyped field allows the new types too (the user said the change is fine)."""
    accepted = dict(contract)
    for name in report.disappeared:
        accepted[name] = FieldRule(accepted[name].types, required=False)
    for name, kinds in report.retyped.items():
        accepted[name] = FieldRule(
            accepted[name].types | frozenset(kinds["observed"]), accepted[name].required
        )
    return accepted


def to_json(contract: Contract) -> str:
    return orjson.dumps({k: v.as_dict() for k, v in sorted(contract.items())}).decode()


def from_json(text: str) -> Contract:
    raw: Mapping[str, Any] = orjson.loads(text)
    return {k: FieldRule(frozenset(v["types"]), bool(v["required"])) for k, v in raw.items()}
