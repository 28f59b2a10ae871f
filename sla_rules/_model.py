"""The SLA rule format (version 1) and its validated model.

A rule file is YAML::

    version: 1
    service: quote-to-cash
    slos:
      - id: closed-won-to-erp-order          # unique across all files, [a-z0-9-]
        name: Closed-won to ERP order
        description: ...
        objective: 99%                        # or 0.99
        impact_tier: revenue                  # revenue | cash_collection |
                                              # customer_experience | compliance
        risk: at_risk                         # optional: at_risk (default) | latent
        indicator:
          kind: latency                       # see the indicator models below
          start: {kind: opportunity.closed_won}
          end: {kind: order.created}
          threshold: 5m
        alerting:                             # optional; the defaults below
          page_fast: {long: 1h, short: 5m, burn_rate: 14.4}
          page_slow: {long: 6h, short: 30m, burn_rate: 6}
          ticket: {long: 3d, short: 6h, burn_rate: 1}
          resolve_after: 10m                  # clear this long before resolving
          reopen_within: 30m                  # a re-fire inside this reopens (flap guard)

Durations are ``<number><unit>`` with units s, m, h, d, w. A bad file fails at load
with a :class:`RuleFileError` naming the file, the rule and the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from tracing import ConfigError

__all__ = [
    "FORMAT_VERSION",
    "SHIPPED_RULES_DIR",
    "AlertPolicy",
    "BurnTier",
    "ImpactTier",
    "Indicator",
    "ReconciliationDriftIndicator",
    "Rule",
    "RuleFileError",
    "load_rules",
    "parse_duration",
    "parse_ratio",
]

FORMAT_VERSION = 1
SHIPPED_RULES_DIR = Path(__file__).parent

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class RuleFileError(ConfigError):
    """A rule file cannot be loaded; ``setting`` reads ``FILE: rule ID: FIELD``."""

    def __init__(self, path: Path | str, rule: str | None, field: str | None, problem: str):
        where = str(path)
        if rule:
            where += f": rule {rule}"
        if field:
            where += f": {field}"
        super().__init__(where, problem)
        self.path = str(path)
        self.rule = rule
        self.field = field


def parse_duration(value: Any) -> timedelta:
    """``"5m"`` → 5 minutes; a bare number is seconds. Must be positive.

    >>> parse_duration("90s")
    datetime.timedelta(seconds=90)
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like 30s, 5m, 1h, 3d; got {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive; got {value!r}")
    return timedelta(seconds=seconds)


def parse_ratio(value: Any) -> float:
    """``"99.5%"`` or ``0.995`` → 0.995; must lie strictly between 0 and 1."""
    if isinstance(value, str):
        text = value.strip()
        try:
            ratio = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"expected a ratio like 99.5% or 0.995; got {value!r}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ratio = float(value)
    else:
        raise ValueError(f"expected a ratio like 99.5% or 0.995; got {value!r}")
    ratio = round(ratio, 12)  # "99.9%" is 0.999, not 0.9990000000000001
    if not 0 < ratio < 1:
        raise ValueError(f"an objective must lie strictly between 0% and 100%; got {value!r}")
    return ratio


Duration = Annotated[timedelta, Field()]


class ImpactTier(StrEnum):
    """What a breach hurts; weights the alert score."""

    REVENUE = "revenue"
    CASH_COLLECTION = "cash_collection"
    CUSTOMER_EXPERIENCE = "customer_experience"
    COMPLIANCE = "compliance"

    @property
    def weight(self) -> float:
        return _TIER_WEIGHTS[self]


# Revenue first (bookings not reaching the ERP), then cash, then audit exposure, then
# customer experience (which hurts, but rarely moves money the same day).
_TIER_WEIGHTS = {
    ImpactTier.REVENUE: 1.0,
    ImpactTier.CASH_COLLECTION: 0.9,
    ImpactTier.COMPLIANCE: 0.8,
    ImpactTier.CUSTOMER_EXPERIENCE: 0.7,
}


class RiskTier(StrEnum):
    """Whether a breach puts money at risk now; the first key of the alert ranking.

    ``at_risk``: the bad items' amounts are at risk now (a failed invoice posting holds
    its amount from revenue recognition). ``latent``: nothing is at risk until a later
    business event uses what failed (a catalog sync: until an order uses the product).
    """

    AT_RISK = "at_risk"
    LATENT = "latent"

    @property
    def rank(self) -> int:
        """Lower ranks first in the alert list."""
        return _RISK_RANKS[self]


_RISK_RANKS = {RiskTier.AT_RISK: 0, RiskTier.LATENT: 1}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _dur(value: Any) -> timedelta:
    return parse_duration(value)


class Milestone(_Strict):
    """An event that marks a business milestone: its kind and the statuses that count."""

    kind: str
    statuses: tuple[str, ...] = ("ok",)


class LatencyIndicator(_Strict):
    """Good when ``end`` follows ``start`` in the same transaction within ``threshold``.

    A transaction whose ``end`` has not arrived once ``threshold`` has passed is bad at
    that moment; one still inside its threshold is pending and not counted yet.
    """

    kind: Literal["latency"]
    start: Milestone
    end: Milestone
    threshold: timedelta

    _t = field_validator("threshold", mode="before")(_dur)

    @property
    def deadline(self) -> timedelta:
        return self.threshold


class CompletenessIndicator(_Strict):
    """Good when a started transaction reaches ``milestone`` by ``deadline``.

    The bad side needs no event: a transaction that stays silent past its deadline
    counts as bad.
    """

    kind: Literal["completeness"]
    start: Milestone
    milestone: Milestone
    deadline: timedelta

    _t = field_validator("deadline", mode="before")(_dur)


class SuccessRatioIndicator(_Strict):
    """The share of a step's final outcomes that are ``ok`` (retries are not outcomes)."""

    kind: Literal["success_ratio"]
    step: str
    good_statuses: tuple[str, ...] = ("ok",)
    bad_statuses: tuple[str, ...] = ("dead_lettered", "failed")


class BacklogIndicator(_Strict):
    """Time-slice SLI: a minute is good when the open backlog stays within bounds.

    Open items are transactions ``in_progress`` whose last step is not one that
    legitimately waits (``waiting_kinds``, e.g. an invoice awaiting payment).
    """

    kind: Literal["backlog"]
    max_open: int = Field(ge=0)
    max_age: timedelta
    waiting_kinds: tuple[str, ...] = ()

    _t = field_validator("max_age", mode="before")(_dur)


class StalledIndicator(_Strict):
    """Time-slice SLI: a minute is good when at most ``max_stalled`` transactions are
    stalled: overdue at the step they wait for (by their flow's step table), with no
    open dead letter to account for them (``collector.lineage.waiting_sql``)."""

    kind: Literal["stalled"]
    max_stalled: int = Field(0, ge=0)


class DuplicateRateIndicator(_Strict):
    """The share of deliveries of ``kinds`` that were not recognised as duplicates."""

    kind: Literal["duplicate_rate"]
    kinds: tuple[str, ...] = Field(min_length=1)


class ResolutionTimeIndicator(_Strict):
    """A dead letter is good when resolved (or knowingly ignored) within ``threshold``."""

    kind: Literal["resolution_time"]
    threshold: timedelta
    resolved_states: tuple[str, ...] = ("resolved", "ignored")

    _t = field_validator("threshold", mode="before")(_dur)

    @property
    def deadline(self) -> timedelta:
        return self.threshold


class ApiErrorRateIndicator(_Strict):
    """The share of calls to (outbound) or from (inbound) ``system`` that succeeded.

    Every attempt is a call, so a retried failure counts against the system.
    """

    kind: Literal["api_error_rate"]
    #: A system the host declares (checked at load against the installed systems).
    system: str = Field(min_length=1)
    direction: Literal["outbound", "inbound"] = "outbound"


class ReconciliationDriftIndicator(_Strict):
    """Time-slice SLI over the reconciliation runs: a minute is good when the latest
    completed run of each reconciliation period (``periods``) leaves at most
    ``max_open`` open discrepancies and, per currency, at most ``max_value_at_risk``.

    A discrepancy two runs both find (a day run and a month run) counts once; one
    explained since counts no more. A run finished longer than ``max_run_age`` ago is
    stale and not read. Without the reconcile plug-in's tables, or without a completed
    run, the minute has no data (neither good nor bad).
    """

    kind: Literal["reconciliation_drift"]
    max_open: int = Field(0, ge=0)
    #: Per currency; ``None``: only the count is bounded.
    max_value_at_risk: Decimal | None = Field(None, ge=0)
    periods: tuple[Literal["day", "week", "month", "custom"], ...] = Field(
        ("day", "week", "month"), min_length=1
    )
    max_run_age: timedelta | None = None

    @field_validator("max_run_age", mode="before")
    @classmethod
    def _age(cls, value: Any) -> timedelta | None:
        return None if value is None else parse_duration(value)


Indicator = Annotated[
    LatencyIndicator
    | CompletenessIndicator
    | SuccessRatioIndicator
    | BacklogIndicator
    | StalledIndicator
    | DuplicateRateIndicator
    | ResolutionTimeIndicator
    | ApiErrorRateIndicator
    | ReconciliationDriftIndicator,
    Field(discriminator="kind"),
]


class BurnTier(_Strict):
    """Fire when both windows burn faster than ``burn_rate`` (SRE workbook, ch. 5)."""

    long: timedelta
    short: timedelta
    burn_rate: float = Field(gt=0)

    _t = field_validator("long", "short", mode="before")(_dur)

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnTier:
        if self.short >= self.long:
            raise ValueError("short window must be shorter than long window")
        return self


class AlertPolicy(_Strict):
    """Multiwindow, multi-burn-rate alerting for a 30-day budget, and the flap guard."""

    page_fast: BurnTier = BurnTier(
        long=timedelta(hours=1), short=timedelta(minutes=5), burn_rate=14.4
    )
    page_slow: BurnTier = BurnTier(
        long=timedelta(hours=6), short=timedelta(minutes=30), burn_rate=6.0
    )
    ticket: BurnTier = BurnTier(long=timedelta(days=3), short=timedelta(hours=6), burn_rate=1.0)
    resolve_after: timedelta = timedelta(minutes=10)
    reopen_within: timedelta = timedelta(minutes=30)

    _t = field_validator("resolve_after", "reopen_within", mode="before")(_dur)

    def tiers(self) -> list[tuple[str, str, BurnTier]]:
        """``(name, severity, tier)`` from most to least urgent."""
        return [
            ("page_fast", "page", self.page_fast),
            ("page_slow", "page", self.page_slow),
            ("ticket", "ticket", self.ticket),
        ]


class Rule(_Strict):
    """One SLO: an objective over a 30-day window on one indicator."""

    id: str
    name: str
    description: str = ""
    service: str = ""
    objective: float
    window: timedelta = timedelta(days=30)
    impact_tier: ImpactTier
    #: ``at_risk`` (the default) or ``latent``: see :class:`RiskTier`.
    risk: RiskTier = RiskTier.AT_RISK
    indicator: Indicator
    alerting: AlertPolicy = AlertPolicy()
    runbook: str = ""
    source: str = ""

    _o = field_validator("objective", mode="before")(parse_ratio)
    _w = field_validator("window", mode="before")(_dur)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _RULE_ID.match(value):
            raise ValueError("an id is 2-63 characters of a-z, 0-9 and '-'")
        return value

    @property
    def scope(self) -> str:
        """What the rule watches; alerts are deduplicated per rule and scope."""
        system = getattr(self.indicator, "system", None)
        return str(system) if system else "all"

    @property
    def error_budget(self) -> float:
        return 1.0 - self.objective


def _field_path(loc: tuple[int | str, ...]) -> str:
    # Drop pydantic's discriminator tag from the location ("indicator.latency.threshold").
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "indicator" and not parts[1].startswith("kind"):
        kinds = {"latency", "completeness", "success_ratio", "backlog", "duplicate_rate"}
        kinds |= {"resolution_time", "api_error_rate", "stalled", "reconciliation_drift"}
        if parts[1] in kinds:
            parts.pop(1)
    return ".".join(parts)


def _load_file(path: Path) -> list[Rule]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleFileError(path, None, None, f"cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RuleFileError(path, None, None, f"not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise RuleFileError(path, None, None, "expected a mapping with version, service, slos")
    version = document.get("version")
    if version != FORMAT_VERSION:
        raise RuleFileError(path, None, "version", f"unsupported version {version!r}")
    service = document.get("service")
    if not isinstance(service, str) or not service:
        raise RuleFileError(path, None, "service", "a service name is required")
    slos = document.get("slos")
    if not isinstance(slos, list) or not slos:
        raise RuleFileError(path, None, "slos", "a non-empty list of SLOs is required")
    rules: list[Rule] = []
    for index, entry in enumerate(slos):
        if not isinstance(entry, dict):
            raise RuleFileError(path, f"#{index + 1}", None, "an SLO entry must be a mapping")
        rule_name = str(entry.get("id") or f"#{index + 1}")
        data = {"service": service, **entry, "source": path.name}
        try:
            rules.append(Rule.model_validate(data))
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            raise RuleFileError(
                path, rule_name, _field_path(tuple(first["loc"])), first["msg"]
            ) from exc
    return rules


def load_rules(paths: Sequence[Path] | None = None) -> list[Rule]:
    """Load and validate rule files (default: the shipped ``sla_rules/*.yaml``).

    A directory stands for its ``*.yaml`` files. Rule IDs must be unique.
    """
    if paths is None:
        paths = [SHIPPED_RULES_DIR]
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    rules: list[Rule] = []
    seen: dict[str, Path] = {}
    for file in files:
        for rule in _load_file(file):
            if rule.id in seen:
                raise RuleFileError(file, rule.id, "id", f"duplicate of a rule in {seen[rule.id]}")
            seen[rule.id] = file
            rules.append(rule)
    return rules
