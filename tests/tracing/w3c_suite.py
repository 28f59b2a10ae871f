"""The W3C trace-context test suite (w3c/trace-context, ``test/``), rebuilt as data.

The suite drives a service over HTTP: it sends a request with some headers and
asks the service to call it back; it then checks the ``traceparent`` and
``tracestate`` of the callback. Here the "service" is an OpenTelemetry SDK
tracer and a propagator: extract from the request headers (every field, any
letter case, as a server hands them over), start a server span, start a client
span per callback, inject. Each case below is one test method of the suite, with
its requests and its assertions; ``LEVEL_2`` names the ones the suite runs only
at its strict level.

``python -m tests.tracing.w3c_suite`` prints the score of Interlock's propagator
and of OpenTelemetry's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.propagators import textmap
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from tracing._tracecontext import header_getter

Headers = list[tuple[str, str]]

_PROVIDER = TracerProvider()
_TRACER = _PROVIDER.get_tracer("w3c-suite")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")

T1 = "12345678901234567890123456789012"
P1 = "1234567890123456"
TP01 = f"00-{T1}-{P1}-01"
TP00 = f"00-{T1}-{P1}-00"


@dataclass(frozen=True)
class Traceparent:
    """The harness's view of the callback's ``traceparent``."""

    version: str
    trace_id: str
    parent_id: str
    flags: str


class Tracestate(dict[str, str]):
    """The harness's view of the callback's ``tracestate`` (ordered)."""

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.items())


def _traceparent(headers: Headers) -> Traceparent:
    found = [v for k, v in headers if k.lower() == "traceparent"]
    assert len(found) == 1, f"expect one traceparent header, got {found!r}"
    match = _TRACEPARENT.fullmatch(found[0])
    assert match, f"the callback's traceparent is malformed: {found[0]!r}"
    version, trace_id, parent_id, flags = match.groups()
    assert version != "ff" and trace_id != "0" * 32 and parent_id != "0" * 16
    return Traceparent(version, trace_id, parent_id, flags)


def _tracestate(headers: Headers) -> Tracestate:
    state = Tracestate()
    for key, value in headers:
        if key.lower() != "tracestate":
            continue
        for member in value.split(","):
            member = member.strip(" \t")
            if not member:
                continue
            k, _, v = member.partition("=")
            assert _KEY.fullmatch(k) and _VALUE.fullmatch(v), f"bad member {member!r}"
            assert k not in state, f"the callback's tracestate repeats {k!r}"
            state[k] = v
    return state


class Service:
    """A service under test: an SDK tracer with ``propagator`` at its edges."""

    def __init__(self, propagator: textmap.TextMapPropagator) -> None:
        self.propagator = propagator

    def request(self, headers: Headers, callbacks: int = 1) -> list[Headers]:
        ctx = self.propagator.extract(headers, getter=header_getter)
        out: list[Headers] = []
        with _TRACER.start_as_current_span("POST /test", context=ctx, kind=SpanKind.SERVER):
            for _ in range(callbacks):
                with _TRACER.start_as_current_span("POST /callback", kind=SpanKind.CLIENT):
                    carrier: dict[str, str] = {}
                    self.propagator.inject(carrier)
                    out.append(list(carrier.items()))
        return out

    def single(self, headers: Headers) -> tuple[Traceparent, Tracestate]:
        (callback,) = self.request(headers)
        return _traceparent(callback), _tracestate(callback)


Case = Callable[[Service], None]
CASES: dict[str, Case] = {}
#: Cases the suite runs only at ``STRICT_LEVEL`` 2 (its default).
LEVEL_2: set[str] = set()


def case(*, level: int = 1) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[fn.__name__] = fn
        if level == 2:
            LEVEL_2.add(fn.__name__)
        return fn

    return register


def _new_trace(s: Service, *headers: tuple[str, str], old: str = T1) -> None:
    tp, _ = s.single(list(headers))
    assert tp.trace_id != old


def _same_trace(s: Service, *headers: tuple[str, str]) -> None:
    tp, _ = s.single(list(headers))
    assert tp.trace_id == T1


# -- traceparent ---------------------------------------------------------------


@case()
def both_traceparent_and_tracestate_missing(s: Service) -> None:
    s.single([])


@case()
def traceparent_included_tracestate_missing(s: Service) -> None:
    tp, _ = s.single([("traceparent", TP01)])
    assert tp.trace_id == T1 and tp.parent_id != P1


@case()
def traceparent_duplicated(s: Service) -> None:
    tp, _ = s.single(
        [("traceparent", f"00-{T1[:-1]}1-{P1}-01"), ("traceparent", f"00-{T1}-{P1}-01")]
    )
    assert tp.trace_id not in (f"{T1[:-1]}1", T1)


@case()
def traceparent_header_name(s: Service) -> None:
    _new_trace(s, ("trace-parent", TP01))
    _new_trace(s, ("trace.parent", TP01))


@case()
def traceparent_header_name_valid_casing(s: Service) -> None:
    for name in ("TraceParent", "TrAcEpArEnT", "TRACEPARENT"):
        _same_trace(s, (name, TP01))


@case()
def traceparent_version_0x00(s: Service) -> None:
    _new_trace(s, ("traceparent", f"{TP01}."))
    _new_trace(s, ("traceparent", f"{TP01}-what-the-future-will-be-like"))


@case()
def traceparent_version_0xcc(s: Service) -> None:
    _same_trace(s, ("traceparent", f"cc-{T1}-{P1}-01"))
    _same_trace(s, ("traceparent", f"cc-{T1}-{P1}-01-what-the-future-will-be-like"))
    _new_trace(s, ("traceparent", f"cc-{T1}-{P1}-01.what-the-future-will-be-like"))


@case()
def traceparent_version_0xff(s: Service) -> None:
    _new_trace(s, ("traceparent", f"ff-{T1}-{P1}-01"))


@case()
def traceparent_version_illegal_characters(s: Service) -> None:
    _new_trace(s, ("traceparent", f".0-{T1}-{P1}-01"))
    _new_trace(s, ("traceparent", f"0.-{T1}-{P1}-01"))


@case()
def traceparent_version_too_long(s: Service) -> None:
    _new_trace(s, ("traceparent", f"000-{T1}-{P1}-01"))
    _new_trace(s, ("traceparent", f"0000-{T1}-{P1}-01"))


@case()
def traceparent_version_too_short(s: Service) -> None:
    _new_trace(s, ("traceparent", f"0-{T1}-{P1}-01"))


@case()
def traceparent_trace_id_all_zero(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{'0' * 32}-{P1}-01"), old="0" * 32)


@case()
def traceparent_trace_id_illegal_characters(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-.{T1[1:]}-{P1}-01"), old=f".{T1[1:]}")
    _new_trace(s, ("traceparent", f"00-{T1[:-1]}.-{P1}-01"), old=f"{T1[:-1]}.")


@case()
def traceparent_trace_id_too_long(s: Service) -> None:
    tp, _ = s.single([("traceparent", f"00-{T1}3-{P1}-01")])
    assert tp.trace_id not in (f"{T1}3", T1, f"{T1[1:]}3")


@case()
def traceparent_trace_id_too_short(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{T1[:-1]}-{P1}-01"), old=T1[:-1])


@case()
def traceparent_parent_id_all_zero(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{T1}-{'0' * 16}-01"))


@case()
def traceparent_parent_id_illegal_characters(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{T1}-.{P1[1:]}-01"))
    _new_trace(s, ("traceparent", f"00-{T1}-{P1[:-1]}.-01"))


@case()
def traceparent_parent_id_too_long(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{T1}-{P1}7-01"))


@case()
def traceparent_parent_id_too_short(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{T1}-{P1[:-1]}-01"))


@case()
def traceparent_trace_flags_illegal_characters(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{T1}-{P1}-.0"))
    _new_trace(s, ("traceparent", f"00-{T1}-{P1}-0."))


@case()
def traceparent_trace_flags_too_long(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{T1}-{P1}-001"))


@case()
def traceparent_trace_flags_too_short(s: Service) -> None:
    _new_trace(s, ("traceparent", f"00-{T1}-{P1}-1"))


@case()
def traceparent_ows_handling(s: Service) -> None:
    for value in (f" {TP01}", f"\t{TP01}", f"{TP01} ", f"{TP01}\t", f"\t {TP01} \t"):
        _same_trace(s, ("traceparent", value))


# -- tracestate ----------------------------------------------------------------


@case()
def tracestate_included_traceparent_missing(s: Service) -> None:
    _, first = s.single([("tracestate", "foo=1")])
    _, second = s.single([("tracestate", "foo=1,bar=2")])
    assert len(first) == len(second)


@case()
def tracestate_included_traceparent_included(s: Service) -> None:
    tp, ts = s.single([("traceparent", TP00), ("tracestate", "foo=1,bar=2")])
    assert tp.trace_id == T1 and ts.get("foo") == "1" and ts.get("bar") == "2"


@case()
def tracestate_header_name(s: Service) -> None:
    for name in ("trace-state", "trace.state"):
        _, ts = s.single([("traceparent", TP00), (name, "foo=1")])
        assert "foo" not in ts


@case()
def tracestate_header_name_valid_casing(s: Service) -> None:
    for name in ("TraceState", "TrAcEsTaTe", "TRACESTATE"):
        _, ts = s.single([("traceparent", TP00), (name, "foo=1")])
        assert ts.get("foo") == "1"


@case()
def tracestate_empty_header(s: Service) -> None:
    tp, _ = s.single([("traceparent", TP00), ("tracestate", "")])
    assert tp.trace_id == T1
    for fields in (["foo=1", ""], ["", "foo=1"]):
        tp, ts = s.single([("traceparent", TP00), *(("tracestate", f) for f in fields)])
        assert tp.trace_id == T1 and ts.get("foo") == "1"


@case()
def tracestate_multiple_headers_different_keys(s: Service) -> None:
    tp, ts = s.single(
        [
            ("traceparent", TP00),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ]
    )
    text = str(ts)
    order = ["foo=1", "bar=2", "rojo=1", "congo=2", "baz=3"]
    assert tp.trace_id == T1 and all(m in text for m in order)
    assert [text.index(m) for m in order] == sorted(text.index(m) for m in order)


@case(level=2)
def tracestate_duplicated_keys(s: Service) -> None:
    for fields in (["foo=1,foo=1"], ["foo=1,foo=2"], ["foo=1", "foo=1"], ["foo=1", "foo=2"]):
        tp, ts = s.single([("traceparent", TP00), *(("tracestate", f) for f in fields)])
        assert tp.trace_id == T1 and "foo" not in ts


@case()
def tracestate_all_allowed_characters(s: Service) -> None:
    key = "".join(map(chr, range(0x61, 0x7B))) + "0123456789_-*/"
    value = "".join(map(chr, [*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)]))
    for k in (key, f"{key}@a-z0-9_-*/"):
        _, ts = s.single([("traceparent", TP00), ("tracestate", f"{k}={value}")])
        assert ts.get(k) == value


@case()
def tracestate_ows_handling(s: Service) -> None:
    for header in ("foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"):
        _, ts = s.single([("traceparent", TP00), ("tracestate", header)])
        assert (ts.get("foo"), ts.get("bar"), ts.get("baz")) == ("1", "2", "3")
    for header in (" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"):
        tp, ts = s.single([("traceparent", TP00), ("tracestate", header)])
        assert tp.trace_id == T1 and ts.get("foo") == "1"


@case(level=2)
def tracestate_key_illegal_characters(s: Service) -> None:
    for header, key in (("foo =1", "foo "), ("FOO=1", "FOO"), ("foo.bar=1", "foo.bar")):
        _, ts = s.single([("traceparent", TP00), ("tracestate", header)])
        assert key not in ts


@case(level=2)
def tracestate_key_illegal_vendor_format(s: Service) -> None:
    for bad in ("foo@=1", "@foo=1", "foo@@bar=1", "foo@bar@baz=1"):
        _, ts = s.single([("traceparent", TP00), ("tracestate", f"{bad},bar=2")])
        assert "bar" not in ts


_BARS = [",".join(f"bar{i:02d}={i:02d}" for i in range(a, b)) for a, b in ((1, 11), (11, 21))]
_BARS.append(",".join(f"bar{i:02d}={i:02d}" for i in range(21, 31)))


@case(level=2)
def tracestate_member_count_limit(s: Service) -> None:
    fields = [*_BARS, "bar31=31,bar32=32"]
    _, ts = s.single([("traceparent", TP00), *(("tracestate", f) for f in fields)])
    assert ts.get("bar01") == "01" and len(ts) == 32
    fields = [*_BARS, "bar31=31,bar32=32,bar33=33"]
    _, ts = s.single([("traceparent", TP00), *(("tracestate", f) for f in fields)])
    assert "bar01" not in ts


@case(level=2)
def tracestate_key_length_limit(s: Service) -> None:
    def foo_after(member: str) -> str | None:
        _, ts = s.single([("traceparent", TP00), ("tracestate", "foo=1"), ("tracestate", member)])
        return ts.get("foo")

    assert foo_after("z" * 256 + "=1") == "1"
    assert foo_after("z" * 257 + "=1") is None
    assert foo_after("t" * 241 + "@" + "v" * 14 + "=1") == "1"
    assert foo_after("t" * 242 + "@v=1") is None
    assert foo_after("t@" + "v" * 15 + "=1") is None


@case(level=2)
def tracestate_value_illegal_characters(s: Service) -> None:
    _, ts = s.single([("traceparent", TP00), ("tracestate", "foo=bar=baz")])
    assert "foo" not in ts
    _, ts = s.single([("traceparent", TP00), ("tracestate", "foo=,bar=3")])
    assert "foo" not in ts and "bar" not in ts


# -- advanced ------------------------------------------------------------------


def _callbacks(s: Service, headers: Headers) -> tuple[set[str], set[str]]:
    parents = [_traceparent(h) for h in s.request(headers, callbacks=3)]
    return {p.trace_id for p in parents}, {p.parent_id for p in parents}


@case()
def multiple_requests_with_valid_traceparent(s: Service) -> None:
    trace_ids, parent_ids = _callbacks(s, [("traceparent", TP01)])
    assert trace_ids == {T1} and len(parent_ids) == 3


@case()
def multiple_requests_without_traceparent(s: Service) -> None:
    _, parent_ids = _callbacks(s, [])
    assert len(parent_ids) == 3


@case()
def multiple_requests_with_illegal_traceparent(s: Service) -> None:
    trace_ids, parent_ids = _callbacks(s, [("traceparent", f"00-{'0' * 32}-{P1}-01")])
    assert "0" * 32 not in trace_ids and len(parent_ids) == 3


def outcome(propagator: textmap.TextMapPropagator) -> dict[str, bool]:
    """Which cases pass with ``propagator`` at the service's edges."""
    service = Service(propagator)
    results: dict[str, bool] = {}
    for name, fn in CASES.items():
        try:
            fn(service)
        except AssertionError:
            results[name] = False
        else:
            results[name] = True
    return results


if __name__ == "__main__":  # pragma: no cover - a report for people
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from tracing import TraceContextPropagator

    for label, prop in (
        ("interlock", TraceContextPropagator()),
        (
            "interlock, discard_invalid_tracestate",
            TraceContextPropagator(discard_invalid_tracestate=True),
        ),
        ("opentelemetry", TraceContextTextMapPropagator()),
    ):
        got = outcome(prop)
        level1 = {n: ok for n, ok in got.items() if n not in LEVEL_2}
        failed = sorted(n for n, ok in got.items() if not ok)
        print(
            f"{label}: strict level 2 {sum(got.values())}/{len(got)}, "
            f"level 1 {sum(level1.values())}/{len(level1)}; failing: {', '.join(failed) or '-'}"
        )
