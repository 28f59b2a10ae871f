"""What a flow declares once: its step table and its spec (no DuckDB here).


A flow declares its steps once, in order (:class:`FlowSteps`): each step follows
the one before it (or the one it names in ``after``, for a branch) and has a
deadline counted from the moment that predecessor finished (the first step: from
the trigger). For a transaction that is not completed, a step is *pending* when
its predecessor has an ``ok`` event and it has none; the transaction waits for
its pending step with the earliest due time (``waiting_step``, ``waiting_since``,
``due_at``).

A transaction is *stalled* when that due time has passed and nothing accounts
for it: no unresolved dead letter (open, or in a replay). Every transaction is
then completed, in flight within a deadline, visibly waiting, or stalled; never
silently stuck.

A :class:`FlowSpec` adds what the rest of Interlock reads from the flow instead of
keeping its own copy: the kinds that trigger it, the steps that move money (a
replay of one needs four eyes), the steps its ingress records before the table
starts, and the payload models that replay's corrections validate against. A
running flow (:class:`Flow`) pairs a spec with its handler and its dry-run probe;
the host subscribes it to its trigger kinds.

    >>> steps = FlowSteps(
    ...     "demo", "order.placed",
    ...     (FlowStep("erp.order.create", timedelta(minutes=15)),
    ...      FlowStep("billing.invoice.create", timedelta(hours=1))),
    ... )
    >>> steps.predecessor("billing.invoice.create")
    'erp.order.create'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import pydantic

from tracing import ConfigError, Event

__all__ = ["Flow", "FlowSpec", "FlowStep", "FlowSteps", "PayloadModelConflict"]


@dataclass(frozen=True, slots=True)
class FlowStep:
    """One step of a flow: done when an ``ok`` event of ``step`` is stored.

    ``deadline`` runs from the moment its predecessor was done; ``after`` names
    that predecessor when it is not the step listed before this one.
    """

    step: str
    deadline: timedelta
    after: str | None = None
    #: The kind of the step's ``ok`` event (``order.created`` for ``erp.order.create``).
    kind: str | None = None

    def __post_init__(self) -> None:
        if not self.step:
            raise ValueError("a flow step needs a name")
        if self.deadline <= timedelta(0):
            raise ValueError(f"the deadline of {self.step} must be positive")


@dataclass(frozen=True, slots=True)
class FlowSteps:
    """A flow's ordered step table, started by an ``ok`` event of kind ``trigger``."""

    flow: str
    trigger: str
    steps: tuple[FlowStep, ...]
    #: Kinds whose ``ok`` event puts a transaction on a business hold (``on_hold``: a
    #: credit hold), and kinds whose ``ok`` event lifts it; the newer one wins. A held
    #: transaction is visibly waiting, never stalled.
    hold_kinds: frozenset[str] = frozenset()
    release_kinds: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.hold_kinds & self.release_kinds:
            raise ValueError(f"flow {self.flow} both holds and releases on the same kind")
        if not self.steps:
            raise ValueError(f"flow {self.flow} has no steps")
        seen: set[str] = set()
        for step in self.steps:
            if step.step in seen:
                raise ValueError(f"flow {self.flow} lists {step.step} twice")
            if step.after is not None and step.after not in seen:
                raise ValueError(
                    f"{step.step} of flow {self.flow} follows {step.after}, "
                    "which is not an earlier step"
                )
            seen.add(step.step)

    def predecessor(self, step: str) -> str | None:
        """The step ``step`` waits on (None: the trigger)."""
        previous: str | None = None
        for item in self.steps:
            if item.step == step:
                return item.after if item.after is not None else previous
            previous = item.step
        raise KeyError(step)

    def deadline(self, step: str) -> timedelta:
        return next(s.deadline for s in self.steps if s.step == step)


@dataclass(frozen=True)
class FlowSpec:
    """A flow's facts, declared once in the flow's own module.

    ``trigger_kinds`` are the event kinds the flow reacts to; ``money_steps`` the
    steps whose redo creates, changes or moves money; ``entry_steps`` maps steps
    recorded before the table starts (the ingress: ``crm.opportunity.closed_won``)
    to the kind of their event; ``payload_models`` maps each payload key its events
    carry that a replay's corrections must keep valid to the model its value must
    validate as (the host merges every flow's; one key has one model across the
    installed flows); ``group`` names the flow's bus
    subscription (its Kafka consumer group: keep it stable once deployed);
    ``rule_files`` are SLA rule files kept beside the flow.
    """

    name: str
    steps: FlowSteps
    trigger_kinds: frozenset[str]
    money_steps: frozenset[str] = frozenset()
    entry_steps: Mapping[str, str] = field(default_factory=dict)
    #: Steps outside the table, each with the kind of its ``ok`` event: steps only some
    #: transactions take (a credit hold and its publications), which no transaction
    #: waits for but replay and the SLA rules know.
    side_steps: Mapping[str, str] = field(default_factory=dict)
    payload_models: Mapping[str, type[pydantic.BaseModel]] = field(default_factory=dict)
    group: str = ""
    #: SLA rule files the flow ships in its own room (loaded with the shipped rules).
    rule_files: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not self.trigger_kinds:
            raise ValueError(f"flow {self.name} reacts to no event kind")
        unknown = sorted(self.money_steps - self.step_names)
        if unknown:
            raise ValueError(f"flow {self.name} names money steps it does not have: {unknown}")

    @property
    def subscription(self) -> str:
        return self.group or self.name

    @property
    def step_names(self) -> frozenset[str]:
        """Every step the flow's transactions hold: its ingress steps and its table."""
        return (
            frozenset(self.entry_steps)
            | frozenset(self.side_steps)
            | {s.step for s in self.steps.steps}
        )

    @property
    def step_kinds(self) -> dict[str, str]:
        """Step → the kind of its ``ok`` event, where the flow declares it."""
        out = dict(self.entry_steps)
        out.update(self.side_steps)
        out.update({s.step: s.kind for s in self.steps.steps if s.kind})
        return out

    @property
    def kinds(self) -> frozenset[str]:
        """Every kind the flow's events carry: its triggers and its steps' results."""
        return self.trigger_kinds | set(self.step_kinds.values())

    def steps_of_kind(self, kind: str) -> frozenset[str]:
        return frozenset(step for step, k in self.step_kinds.items() if k == kind)


class PayloadModelConflict(ConfigError):
    """Two installed flows declare the same payload key with different models.

    Replay validates a corrected payload's ``key`` with the one model the installed
    flows declare for it, so the second flow to declare another one is refused.
    """

    def __init__(
        self,
        key: str,
        first: tuple[str, type[pydantic.BaseModel]],
        second: tuple[str, type[pydantic.BaseModel]],
    ) -> None:
        (self.first_flow, self.first_model), (self.second_flow, self.second_model) = first, second
        self.key = key
        super().__init__(
            f"flows.{self.second_flow}.payload_models.{key}",
            f"flow {self.first_flow} declares payload key {key!r} as "
            f"{_model_name(self.first_model)}, flow {self.second_flow} as "
            f"{_model_name(self.second_model)}; a payload key has one model",
        )


def _model_name(model: type[pydantic.BaseModel]) -> str:
    return f"{model.__module__}.{model.__qualname__}"


class Flow(Protocol):
    """A running flow: its spec, its handler and its dry-run probe."""

    @property
    def spec(self) -> FlowSpec: ...

    async def handle(self, event: Event) -> None:
        """React to one event of a trigger kind; failures become dead letters."""

    async def probe(self, dead_letter: Event) -> bool | None:
        """For a replay's dry run: does the target already hold this step's effect
        (None: this flow cannot tell)?"""
