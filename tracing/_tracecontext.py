"""W3C Trace Context (``traceparent``, ``tracestate``), parsed strictly.

Written from the W3C Trace Context recommendation (level 1, with the level 2
``random`` flag) where OpenTelemetry's own propagator is lax:

* ``traceparent`` must arrive exactly once: two header fields are two claims
  about the caller, so neither is believed and the trace restarts.
* version ``ff`` is invalid; version ``00`` is exactly
  ``00-<32 hex>-<16 hex>-<2 hex>``; a higher version is read by its first four
  fields, which must be followed by the end or a dash. Hex is lowercase;
  all-zero trace and parent IDs are invalid. Whitespace (space, tab) around the
  value is allowed.
* flags are kept as they came (``00``, ``01``, ``02``, ``03``) with the bits this
  version does not define cleared, as the spec requires of a sender.
* ``tracestate`` is read only when ``traceparent`` was valid. Header fields are
  combined in order; members are checked one by one and an invalid one is
  dropped alone (the rest of the list is the caller's and is propagated):
  keys are ``simple`` (``[a-z][a-z0-9_*/-]{0,255}``) or multi-tenant
  ``tenant@system`` (tenant up to 241, system up to 14 characters), values up
  to 256 printable ASCII characters without ``,`` or ``=`` and not ending in a
  space. A key that appears twice has no single last position, so every member
  with that key is dropped. At most 32 members are kept (the right-most go) and
  the combined header is kept within 512 characters by removing members longer
  than 128 characters first, then from the right, as the spec asks.
  ``discard_invalid=True`` instead discards the whole ``tracestate`` when any
  member is invalid or over a limit (what the W3C test suite asserts at its
  strict level); the default keeps the caller's valid members.

``TraceContextPropagator`` is an OpenTelemetry ``TextMapPropagator``;
:func:`install_propagator` makes it the global one, so ``opentelemetry.propagate``
``inject``/``extract`` (the httpx instrumentation among them) use it.

>>> parse_traceparent(["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]).sampled
True
>>> parse_traceparent(["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"] * 2) is None
True
>>> parse_tracestate(["rojo=1,BAD=2", "congo=3"]).header
'rojo=1,congo=3'
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators import textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

__all__ = [
    "KNOWN_FLAGS",
    "MAX_TRACESTATE_LENGTH",
    "MAX_TRACESTATE_MEMBERS",
    "TRACEPARENT",
    "TRACESTATE",
    "HeaderGetter",
    "ParsedTraceState",
    "TraceContextPropagator",
    "TraceParent",
    "header_getter",
    "install_propagator",
    "parse_traceparent",
    "parse_tracestate",
]

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: ``sampled`` (level 1) and ``random`` (level 2); other bits are sent as zero.
KNOWN_FLAGS = 0x03
MAX_TRACESTATE_MEMBERS = 32
#: The combined length the spec asks every vendor to propagate.
MAX_TRACESTATE_LENGTH = 512
#: Members longer than this are the first to go when the header is too long.
_LONG_MEMBER = 128

_OWS = " \t"
_HEX = "[0-9a-f]"
_V00 = re.compile(rf"00-({_HEX}{{32}})-({_HEX}{{16}})-({_HEX}{{2}})")
_FUTURE = re.compile(rf"({_HEX}{{2}})-({_HEX}{{32}})-({_HEX}{{16}})-({_HEX}{{2}})(-.*)?", re.S)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

_KEYCHAR = r"[a-z0-9_\-*/]"
_KEY = re.compile(rf"[a-z]{_KEYCHAR}{{0,255}}|[a-z0-9]{_KEYCHAR}{{0,240}}@[a-z]{_KEYCHAR}{{0,13}}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A valid ``traceparent``: IDs as lowercase hex, ``flags`` as an 8-bit int."""

    trace_id: str
    parent_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & TraceFlags.SAMPLED)

    @property
    def header(self) -> str:
        """The value to send: always version ``00``, unknown flag bits cleared."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags & KNOWN_FLAGS:02x}"


def parse_traceparent(values: Sequence[str] | None) -> TraceParent | None:
    """The ``traceparent`` named by the header field values, or ``None`` (restart).

    ``values`` are all the fields of that name, in order: none, or more than one,
    is ``None``.
    """
    if not values or len(values) != 1:
        return None
    value = values[0].strip(_OWS)
    version = value[:2]
    if len(value) < 55 or value[2:3] != "-" or version == "ff":
        return None
    if version == "00":
        match = _V00.fullmatch(value)
    else:
        match = _FUTURE.fullmatch(value)
        if match is not None:
            match = _V00.fullmatch(f"00{value[2:55]}")
    if match is None:
        return None
    trace_id, parent_id, flags = match.groups()
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16) & KNOWN_FLAGS)


@dataclass(frozen=True, slots=True)
class ParsedTraceState:
    """The members kept, in order, and each dropped member with why."""

    members: tuple[tuple[str, str], ...]
    dropped: tuple[tuple[str, str], ...] = ()

    @property
    def header(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.members)

    def trace_state(self) -> TraceState:
        return TraceState(list(self.members))


def _split_member(member: str) -> tuple[str, str] | None:
    key, sep, value = member.partition("=")
    if not sep or _KEY.fullmatch(key) is None or _VALUE.fullmatch(value) is None:
        return None
    return key, value


def _fit(members: list[tuple[str, str]], dropped: list[tuple[str, str]]) -> None:
    def length() -> int:
        return sum(len(k) + 1 + len(v) for k, v in members) + max(len(members) - 1, 0)

    for i in range(len(members) - 1, -1, -1):
        if length() <= MAX_TRACESTATE_LENGTH:
            return
        key, value = members[i]
        if len(key) + 1 + len(value) > _LONG_MEMBER:
            dropped.append((f"{key}={value}", "tracestate longer than 512 characters"))
            del members[i]
    while members and length() > MAX_TRACESTATE_LENGTH:
        key, value = members.pop()
        dropped.append((f"{key}={value}", "tracestate longer than 512 characters"))


def parse_tracestate(
    values: Iterable[str] | None, *, discard_invalid: bool = False
) -> ParsedTraceState:
    """The valid members of the ``tracestate`` header fields ``values``, in order.

    With ``discard_invalid``, none at all when one member was dropped.
    """
    members: list[tuple[str, str]] = []
    dropped: list[tuple[str, str]] = []
    for raw in ",".join(values or ()).split(","):
        member = raw.strip(_OWS)
        if not member:
            continue  # empty list members are allowed
        pair = _split_member(member)
        if pair is None:
            dropped.append((member, "not a key=value list member"))
        else:
            members.append(pair)
    counts = Counter(k for k, _ in members)
    if any(n > 1 for n in counts.values()):
        dropped += [(f"{k}={v}", "duplicated key") for k, v in members if counts[k] > 1]
        members = [(k, v) for k, v in members if counts[k] == 1]
    if len(members) > MAX_TRACESTATE_MEMBERS:
        dropped += [(f"{k}={v}", "more than 32 members") for k, v in members[32:]]
        del members[MAX_TRACESTATE_MEMBERS:]
    _fit(members, dropped)
    if discard_invalid and dropped:
        return ParsedTraceState(
            (), tuple(dropped) + tuple((f"{k}={v}", "discarded") for k, v in members)
        )
    return ParsedTraceState(tuple(members), tuple(dropped))


class HeaderGetter(textmap.Getter[Any]):
    """Reads every field of a header, in any letter case, from the carriers we meet.

    Multi-value mappings (Starlette's and httpx's ``Headers``) through their
    ``getlist``/``get_list``; sequences of ``(name, value)`` pairs (Kafka
    headers, ASGI scopes), with ``bytes`` decoded as UTF-8; plain mappings.
    """

    def get(self, carrier: Any, key: str) -> list[str] | None:
        name = key.lower()
        found: list[str] = []
        if isinstance(carrier, Mapping):
            for method in ("getlist", "get_list"):
                many = getattr(carrier, method, None)
                if callable(many):
                    texts = (_text(v) for v in many(key))
                    return [v for v in texts if v is not None] or None
            items: Iterable[Any] = carrier.items()
        else:
            items = carrier
        for item in items:
            if not isinstance(item, tuple | list) or len(item) != 2:
                continue
            k, v = item
            if _text(k, lower=True) != name:
                continue
            if isinstance(v, list | tuple):
                found += [t for t in (_text(x) for x in v) if t is not None]
            else:
                text = _text(v)
                if text is not None:
                    found.append(text)
                else:
                    # A field that is not text still counts, so a second one is seen.
                    found.append("\x00")
        return found or None

    def keys(self, carrier: Any) -> list[str]:
        if isinstance(carrier, Mapping):
            return [str(k) for k in carrier]
        return [t for t in (_text(i[0]) for i in carrier) if t is not None]


def _text(value: Any, *, lower: bool = False) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    return value.lower() if lower else value


header_getter = HeaderGetter()


class TraceContextPropagator(textmap.TextMapPropagator):
    """The W3C ``traceparent``/``tracestate`` propagator, strict (see the module)."""

    def __init__(self, *, discard_invalid_tracestate: bool = False) -> None:
        self.discard_invalid_tracestate = discard_invalid_tracestate

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        # OpenTelemetry's default getter is case-sensitive and sees one value of
        # a multi-value mapping, which hides a duplicated traceparent.
        read: textmap.Getter[Any] = header_getter if getter is textmap.default_getter else getter
        parent = parse_traceparent(read.get(carrier, TRACEPARENT))
        if parent is None:
            return context
        state = parse_tracestate(
            read.get(carrier, TRACESTATE), discard_invalid=self.discard_invalid_tracestate
        )
        for member, why in state.dropped:
            log.info("tracestate member dropped (%s): %.80s", why, member)
        span_context = SpanContext(
            trace_id=int(parent.trace_id, 16),
            span_id=int(parent.parent_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(parent.flags),
            trace_state=state.trace_state(),
        )
        return trace.set_span_in_context(NonRecordingSpan(span_context), context)

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        parent = TraceParent(
            f"{span_context.trace_id:032x}",
            f"{span_context.span_id:016x}",
            int(span_context.trace_flags),
        )
        setter.set(carrier, TRACEPARENT, parent.header)
        if span_context.trace_state:
            setter.set(carrier, TRACESTATE, span_context.trace_state.to_header())

    @property
    def fields(self) -> set[str]:
        return {TRACEPARENT, TRACESTATE}


def install_propagator() -> textmap.TextMapPropagator:
    """Make the strict trace-context propagator (plus W3C baggage) the global one."""
    propagator = CompositePropagator([TraceContextPropagator(), W3CBaggagePropagator()])
    set_global_textmap(propagator)
    return propagator
