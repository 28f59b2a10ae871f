"""The ownership matrix and the survivorship rule, without the systems."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.customers import (
    CustomerField,
    FieldRule,
    OwnershipMatrix,
    Verdict,
    decide,
    load_matrix,
)
from tracing import ConfigError

NAME = FieldRule(owner="erp", consumers=("billing", "crm", "support"), critical=True)
TERMS = FieldRule(owner="erp", consumers=("billing", "crm"))
TAX = FieldRule(owner="erp", consumers=("billing", "crm"), on_consumer_edit="steward")


def test_the_shipped_matrix_covers_every_field_with_one_owner() -> None:
    matrix = load_matrix()
    assert set(matrix.fields) == set(CustomerField)
    assert matrix.rule("legal_name").owner == "erp"
    assert matrix.rule("parent_account").owner == "crm"
    critical = {f.value for f, r in matrix.fields.items() if r.critical}
    assert critical == {"legal_name", "tax_id", "billing_address", "parent_account"}
    assert CustomerField.LEGAL_NAME in matrix.owned_by("erp")


def test_a_matrix_missing_a_field_or_owning_and_consuming_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("version: 1\nfields:\n  legal_name: {owner: erp}\n")
    with pytest.raises(ConfigError, match="no ownership rule for tax_id"):
        load_matrix(bad)
    with pytest.raises(ValueError, match="cannot own and consume"):
        FieldRule(owner="crm", consumers=("crm",))
    with pytest.raises(ValueError):
        OwnershipMatrix.model_validate({"fields": {}})


def test_first_sync_only_sets_the_baseline() -> None:
    assert decide(NAME, {"erp": "a", "crm": "b"}, {}).verdict is Verdict.UNCHANGED


def test_a_critical_change_at_the_owner_is_a_change_request() -> None:
    d = decide(NAME, {"erp": "new", "billing": "old", "crm": "old"},
               {"erp": "old", "billing": "old", "crm": "old"})  # fmt: skip
    assert (d.verdict, d.source, d.targets) == (Verdict.CHANGE_REQUEST, "erp", ("billing", "crm"))


def test_a_non_critical_change_at_the_owner_propagates_at_once() -> None:
    d = decide(
        TERMS,
        {"erp": "n", "billing": "o", "crm": "o"},
        dict.fromkeys(("erp", "billing", "crm"), "o"),
    )
    assert (d.verdict, d.source, d.targets) == (Verdict.PROPAGATE, "erp", ("billing", "crm"))


def test_a_consumer_edit_is_reverted_or_raised_per_field() -> None:
    base = dict.fromkeys(("erp", "billing", "crm"), "o")
    now = {"erp": "o", "billing": "o", "crm": "edited"}
    revert = decide(TERMS, now, base)
    assert (revert.verdict, revert.source, revert.targets) == (Verdict.PROPAGATE, "erp", ("crm",))
    steward = decide(TAX, now, base)
    assert (steward.verdict, steward.targets) == (Verdict.STEWARD, ("crm",))


def test_two_systems_changing_the_field_is_a_conflict() -> None:
    base = dict.fromkeys(("erp", "billing", "crm"), "o")
    d = decide(NAME, {"erp": "x", "billing": "o", "crm": "y"}, base)
    assert (d.verdict, d.changed) == (Verdict.CONFLICT, ("erp", "crm"))
    same = decide(NAME, {"erp": "x", "billing": "o", "crm": "x"}, base)
    assert (same.verdict, same.targets) == (Verdict.CHANGE_REQUEST, ("billing",))


def test_a_steward_decision_is_never_overwritten_by_a_sync() -> None:
    base = {"erp": "s", "billing": "s", "crm": "s"}
    drift = decide(NAME, {"erp": "s", "billing": "s", "crm": "other"}, base,
                   steward="s", steward_source="crm")  # fmt: skip
    assert (drift.verdict, drift.source, drift.targets) == (Verdict.PROPAGATE, "erp", ("crm",))
    # Without the decision the same state would be the CRM's own edit; with it, the
    # decided value still wins when the owner is the one that drifted back...
    owner = decide(TERMS, {"erp": "s", "billing": "s", "crm": "s"}, {"erp": "o", "billing": "s",
                   "crm": "s"}, steward="s", steward_source="crm")  # fmt: skip
    assert owner.verdict is Verdict.UNCHANGED
    # ...and only a new edit at the owner raises a change of its own.
    new = decide(NAME, {"erp": "n", "billing": "s", "crm": "s"}, base, steward="s",
                 steward_source="crm")  # fmt: skip
    assert new.verdict is Verdict.CHANGE_REQUEST
