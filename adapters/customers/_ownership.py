"""The ownership matrix and survivorship: which system owns which customer field, and
what a sync does with what each system holds.

``decide`` is the whole survivorship rule, for one field of one customer:

- a steward's approved decision stands: no later sync overwrites it; a system that
  drifts from it is reverted to it (or raised again, when its value cannot be kept);
- two or more systems changed the field since the last sync, to different values: a
  conflict, for the stewardship queue;
- the owner changed it: a critical field becomes a change request (approval first),
  any other propagates to the consumers at once;
- only a consumer changed it: reverted to the owner's value, or raised for
  stewardship, as the field's ``on_consumer_edit`` says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tracing import ConfigError

__all__ = [
    "DEFAULT_MATRIX",
    "PROPAGATION_ORDER",
    "CustomerField",
    "Decision",
    "FieldRule",
    "OwnershipMatrix",
    "Verdict",
    "decide",
    "fingerprint",
    "load_matrix",
]

#: The shipped default matrix.
DEFAULT_MATRIX = Path(__file__).with_name("ownership.yaml")
#: Staged propagation: the ERP legal entity first, then billing's invoice account, then
#: the CRM, then the support desk.
PROPAGATION_ORDER: tuple[str, ...] = ("erp", "billing", "crm", "support")


class CustomerField(StrEnum):
    """The canonical customer fields the matrix governs."""

    LEGAL_NAME = "legal_name"
    TAX_ID = "tax_id"
    BILLING_ADDRESS = "billing_address"
    SHIPPING_ADDRESS = "shipping_address"
    PARENT_ACCOUNT = "parent_account"
    PAYMENT_TERMS = "payment_terms"
    CREDIT_LIMIT = "credit_limit"
    CONTACTS = "contacts"


System = Literal["erp", "billing", "crm", "support"]


class FieldRule(BaseModel):
    """One row of the matrix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: System
    consumers: tuple[System, ...] = ()
    #: A critical change waits for a data steward's approval (four eyes) before it
    #: propagates; any other change propagates at once.
    critical: bool = False
    #: What a consumer's local edit gets: the owner's value written back, or a
    #: stewardship item.
    on_consumer_edit: Literal["revert", "steward"] = "revert"
    #: Personal or sensitive: stored and served masked, kept in clear nowhere in
    #: Interlock (a change re-reads it from the system it comes from).
    pii: bool = False

    @model_validator(mode="after")
    def _owner_not_consumer(self) -> FieldRule:
        if self.owner in self.consumers:
            raise ValueError(f"{self.owner} cannot own and consume the same field")
        return self

    @property
    def systems(self) -> tuple[str, ...]:
        """Owner and consumers in propagation order."""
        mine = {self.owner, *self.consumers}
        return tuple(s for s in PROPAGATION_ORDER if s in mine)


class OwnershipMatrix(BaseModel):
    """The matrix, version 1: every canonical field has exactly one rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    fields: dict[CustomerField, FieldRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> OwnershipMatrix:
        missing = [f.value for f in CustomerField if f not in self.fields]
        if missing:
            raise ValueError(f"no ownership rule for {', '.join(missing)}")
        return self

    def rule(self, name: str | CustomerField) -> FieldRule:
        return self.fields[CustomerField(name)]

    def owned_by(self, system: str) -> frozenset[CustomerField]:
        """The fields ``system`` owns (the ones no other system may overwrite there)."""
        return frozenset(f for f, r in self.fields.items() if r.owner == system)

    def as_table(self) -> list[dict[str, object]]:
        """The matrix as rows (the API and the customer page show it)."""
        return [
            {"field": f.value, **r.model_dump(mode="json")}
            for f, r in sorted(self.fields.items(), key=lambda kv: list(CustomerField).index(kv[0]))
        ]


def load_matrix(path: str | Path | None = None) -> OwnershipMatrix:
    """The matrix in ``path`` (default: the shipped one); a bad file is a ``ConfigError``
    naming the setting and the problem."""
    source = Path(path) if path else DEFAULT_MATRIX
    try:
        data = yaml.safe_load(source.read_text())
        return OwnershipMatrix.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ConfigError("customers.ownership_file", f"{source}: {exc}") from exc


def fingerprint(value: str | None) -> str | None:
    """A value's stable digest: what Interlock compares and keeps instead of PII."""
    if value is None:
        return None
    return hashlib.sha256(value.strip().encode()).hexdigest()[:32]


class Verdict(StrEnum):
    UNCHANGED = "unchanged"
    PROPAGATE = "propagate"  # the owner's (or steward's) value to the systems differing
    CHANGE_REQUEST = "change_request"  # critical: wait for approval
    CONFLICT = "conflict"  # two systems changed it: stewardship
    STEWARD = "steward"  # a consumer's edit raised for stewardship


@dataclass(frozen=True, slots=True)
class Decision:
    """What a sync does with one field: ``source`` is the system whose value wins
    (``None``: nothing to carry), ``targets`` the systems to write it to."""

    verdict: Verdict
    source: str | None = None
    targets: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


def decide(
    rule: FieldRule,
    current: Mapping[str, str | None],
    baseline: Mapping[str, str | None],
    *,
    steward: str | None = None,
    steward_source: str | None = None,
) -> Decision:
    """Survivorship for one field.

    ``current`` and ``baseline`` map each system holding the customer to the field's
    fingerprint now and at the last sync; ``steward`` is an approved steward
    decision's fingerprint and ``steward_source`` the system it was taken from.
    """
    systems = [s for s in rule.systems if s in current]
    changed = tuple(s for s in systems if s in baseline and current[s] != baseline[s])

    def differing(value: str | None) -> tuple[str, ...]:
        return tuple(s for s in systems if current[s] != value)

    owner_moved = rule.owner in changed and current.get(rule.owner) != steward
    if steward is not None and not owner_moved:
        # An approved decision is never overwritten by a sync: whoever drifts from it
        # gets it back, from a system that still holds it. Only a new edit at the owner
        # (a change request of its own, when critical) can replace it.
        drift = differing(steward)
        if not drift:
            return Decision(Verdict.UNCHANGED)
        holders = [s for s in systems if current[s] == steward]
        source = steward_source if steward_source in holders else (holders[0] if holders else None)
        if source is None:
            return Decision(Verdict.STEWARD, targets=drift, changed=drift)
        return Decision(Verdict.PROPAGATE, source=source, targets=drift, changed=drift)
    if not changed:
        # Nothing moved since the last sync (or this is the first: it sets the baseline).
        return Decision(Verdict.UNCHANGED)
    if len({current[s] for s in changed}) > 1:
        return Decision(Verdict.CONFLICT, changed=changed)
    if rule.owner in changed:
        targets = differing(current[rule.owner])
        if not targets:
            return Decision(Verdict.UNCHANGED, changed=changed)
        verdict = Verdict.CHANGE_REQUEST if rule.critical else Verdict.PROPAGATE
        return Decision(verdict, rule.owner, targets, changed)
    return _consumer_edit(rule, current, changed)


def _consumer_edit(
    rule: FieldRule, current: Mapping[str, str | None], changed: tuple[str, ...]
) -> Decision:
    if rule.owner not in current:
        return Decision(Verdict.UNCHANGED)
    edited = tuple(s for s in changed if current[s] != current[rule.owner])
    if not edited:
        return Decision(Verdict.UNCHANGED)
    if rule.on_consumer_edit == "steward":
        return Decision(Verdict.STEWARD, rule.owner, edited, changed)
    return Decision(Verdict.PROPAGATE, rule.owner, edited, changed)
