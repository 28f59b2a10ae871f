"""Rules checked against what the flows and systems declare, and the steps each measures.

A rule names event kinds (a latency's start and end, a completeness milestone, the
kinds a duplicate rate counts), a step (a success ratio) or a system (an API error
rate). Each name must be one an installed flow or system declares; a typo would
otherwise measure nothing and look perfectly healthy. The steps a rule measures are
what replay selects when asked for a rule's dead letters.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from collector import FlowSpec

from ._model import (
    ApiErrorRateIndicator,
    BacklogIndicator,
    CompletenessIndicator,
    DuplicateRateIndicator,
    LatencyIndicator,
    Rule,
    RuleFileError,
    SuccessRatioIndicator,
)

__all__ = ["check_rules", "rule_steps"]


def _kinds(rule: Rule) -> list[tuple[str, str]]:
    """The (field, kind) pairs a rule names."""
    i = rule.indicator
    if isinstance(i, LatencyIndicator):
        return [("indicator.start.kind", i.start.kind), ("indicator.end.kind", i.end.kind)]
    if isinstance(i, CompletenessIndicator):
        return [
            ("indicator.start.kind", i.start.kind),
            ("indicator.milestone.kind", i.milestone.kind),
        ]
    if isinstance(i, DuplicateRateIndicator):
        return [("indicator.kinds", k) for k in i.kinds]
    if isinstance(i, BacklogIndicator):
        return [("indicator.waiting_kinds", k) for k in i.waiting_kinds]
    return []


def check_rules(
    rules: Iterable[Rule], flows: Sequence[FlowSpec], systems: Collection[str] | None = None
) -> None:
    """Raise :class:`RuleFileError` (file, rule, field) for the first name no flow or
    system declares."""
    kinds = frozenset().union(*(f.kinds for f in flows))
    steps = frozenset().union(*(f.step_names for f in flows))
    for rule in rules:
        for field, kind in _kinds(rule):
            if kind not in kinds:
                raise RuleFileError(
                    rule.source, rule.id, field, f"unknown event kind {kind!r}{_known(kinds)}"
                )
        i = rule.indicator
        if isinstance(i, SuccessRatioIndicator) and i.step not in steps:
            raise RuleFileError(
                rule.source, rule.id, "indicator.step", f"unknown step {i.step!r}{_known(steps)}"
            )
        unknown_system = (
            isinstance(i, ApiErrorRateIndicator) and systems is not None and i.system not in systems
        )
        if unknown_system:
            assert isinstance(i, ApiErrorRateIndicator) and systems is not None
            raise RuleFileError(
                rule.source,
                rule.id,
                "indicator.system",
                f"unknown system {i.system!r}{_known(systems)}",
            )


def _known(names: Collection[str]) -> str:
    return f" (declared: {', '.join(sorted(names))})" if names else " (no flow is installed)"


def rule_steps(rule: Rule, flows: Sequence[FlowSpec]) -> frozenset[str]:
    """The steps whose dead letters count against ``rule``.

    A step rule measures its step; a kind rule the steps whose results are those
    kinds, and the steps between its start and its end in the flow's table; a
    system rule the steps that call that system; a backlog, stalled, resolution or
    reconciliation drift rule every step of every flow (a discrepancy's replay can
    be of any step).
    """
    i = rule.indicator
    if isinstance(i, SuccessRatioIndicator):
        return frozenset({i.step})
    if isinstance(i, ApiErrorRateIndicator):
        return frozenset(s for f in flows for s in f.step_names if s.split(".", 1)[0] == i.system)
    if isinstance(i, LatencyIndicator | CompletenessIndicator):
        end = i.end.kind if isinstance(i, LatencyIndicator) else i.milestone.kind
        out: set[str] = set()
        for flow in flows:
            out |= _path_to(flow, end)
        return frozenset(out)
    if isinstance(i, DuplicateRateIndicator):
        return frozenset(s for f in flows for k in i.kinds for s in f.steps_of_kind(k))
    return frozenset().union(*(f.step_names for f in flows))


def _path_to(flow: FlowSpec, kind: str) -> set[str]:
    """The steps of ``flow`` that must be done for an event of ``kind`` to exist."""
    targets = flow.steps_of_kind(kind)
    table = {s.step for s in flow.steps.steps}
    out: set[str] = set()
    for step in targets:
        current: str | None = step
        while current is not None and current not in out:
            out.add(current)
            current = flow.steps.predecessor(current) if current in table else None
    return out
