"""Operator corrections to a payload before replay, validated and diffed.

The corrected payload must stay valid for the flows that read it: each payload key
an installed flow declares (``FlowSpec.payload_models``: quote-to-cash's ``order``
and ``customer`` …) is validated with that flow's model; a key no flow declares is
carried as it is. Replay keeps no list of models of its own: the service is given
the host's merged map (``Host.payload_models``). The diff (path, before, after)
goes to the audit trail.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from tracing import ValidationError, mask_payload

from ._models import Corrections

__all__ = ["apply_corrections", "diff_payloads"]


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` removes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _order_lines(payload: dict[str, Any]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for holder in (payload, payload.get("order"), payload.get("sales_order")):
        if isinstance(holder, dict) and isinstance(holder.get("lines"), list):
            lines.extend(line for line in holder["lines"] if isinstance(line, dict))
    return lines


def _validate(payload: dict[str, Any], models: Mapping[str, type[BaseModel]]) -> int:
    """Validate each key of ``payload`` a flow declares with its model; how many."""
    checked = 0
    for key, model in models.items():
        if key not in payload:
            continue
        try:
            model.model_validate(payload[key])
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in (key, *first["loc"]))
            raise ValidationError(
                f"the corrected payload is not a valid {model.__name__}: {where}: {first['msg']}",
                field=where,
            ) from exc
        checked += 1
    return checked


def diff_payloads(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Every changed leaf as ``{"path", "before", "after"}`` (absent values are None)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            changes.extend(diff_payloads(before.get(key), after.get(key), sub))
        return changes
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        changes = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            changes.extend(diff_payloads(old, new, f"{path}[{index}]"))
        return changes
    return [] if before == after else [{"path": path, "before": before, "after": after}]


def _masked(change: dict[str, Any]) -> dict[str, Any]:
    # The diff is stored in the audit trail: mask it as any stored payload is.
    key = change["path"].rsplit(".", 1)[-1].split("[", 1)[0]
    return {
        "path": change["path"],
        "before": mask_payload({key: change["before"]})[key],
        "after": mask_payload({key: change["after"]})[key],
    }


def apply_corrections(
    payload: Mapping[str, Any],
    corrections: Corrections,
    *,
    payload_models: Mapping[str, type[BaseModel]],
    known_skus: Collection[str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The corrected payload and its (masked) diff; :class:`tracing.ValidationError`
    if invalid.

    ``payload_models`` maps a payload key to the model its value must validate as
    (the installed flows' ``FlowSpec.payload_models``, merged by the host).

    >>> from adapters.flows import SPEC
    >>> order = {"order_ref": "006A", "currency": "USD", "customer": {"customer_id": "001",
    ...          "name": "Acme"}, "lines": [{"sku": "OLD", "quantity": "1", "unit_price": "5"}]}
    >>> new, diff = apply_corrections({"order": order}, Corrections(sku_map={"OLD": "PLAT-PRO"}),
    ...                               payload_models=SPEC.payload_models)
    >>> diff[0]["path"], diff[0]["after"]
    ('order.lines[0].sku', 'PLAT-PRO')
    """
    original = copy.deepcopy(dict(payload))
    original.pop("corrections", None)
    if known_skus is not None:
        unknown = sorted(set(corrections.sku_map.values()) - set(known_skus))
        if unknown:
            raise ValidationError(
                f"sku_map maps to products the catalogue does not have: {', '.join(unknown)}",
                field="corrections.sku_map",
            )
    corrected: dict[str, Any] = copy.deepcopy(_merge_patch(original, corrections.patch))
    lines = _order_lines(corrected)
    if corrections.sku_map and lines:
        present = {line.get("sku") for line in lines}
        missing = sorted(set(corrections.sku_map) - present)
        if missing:
            raise ValidationError(
                f"sku_map names products the order does not have: {', '.join(missing)}",
                field="corrections.sku_map",
            )
        for line in lines:
            line["sku"] = corrections.sku_map.get(line.get("sku", ""), line.get("sku"))
    for holder in (corrected, corrected.get("order"), corrected.get("sales_order")):
        # Only where the payload holds an order: the flow applies these to the one it loads.
        if isinstance(holder, dict) and "lines" in holder:
            if corrections.payment_terms:
                holder["payment_terms"] = corrections.payment_terms
            if corrections.currency:
                holder["currency"] = corrections.currency
    # A payload without a key a flow declares (the flow reloads the order from its
    # source) is checked field by field by the Corrections model instead.
    _validate(corrected, payload_models)
    diff = [_masked(change) for change in diff_payloads(original, corrected)]
    if corrections:
        # The flow re-reads the order from its source and applies these itself.
        corrected["corrections"] = corrections.model_dump(
            mode="json", exclude_defaults=True, exclude={"patch"}
        )
    return corrected, diff
