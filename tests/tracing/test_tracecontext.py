"""The strict W3C trace-context propagator: the W3C suite's cases, and the spec's
rules the suite does not reach (member-by-member tracestate, limits, flags)."""

from __future__ import annotations

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers

from tests.tracing.w3c_suite import CASES, LEVEL_2, Service, outcome
from tracing import (
    TraceContextPropagator,
    context_from_headers,
    current_trace_context,
    inject_headers,
    parse_traceparent,
    parse_tracestate,
)

T = "0af7651916cd43dd8448eb211c80319c"
P = "b7ad6b7169203331"
_TRACER = TracerProvider().get_tracer("test")

#: Suite cases (strict level 2) that assert the whole tracestate is discarded for
#: one bad member; Interlock drops that member alone (see test_member_by_member).
WHOLE_HEADER = {
    "tracestate_key_illegal_vendor_format",
    "tracestate_member_count_limit",
    "tracestate_key_length_limit",
    "tracestate_value_illegal_characters",
}


def _marks(name: str) -> list[pytest.MarkDecorator]:
    if name in WHOLE_HEADER:
        reason = "the suite discards the whole tracestate; Interlock drops the member"
        return [pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError)]
    return []


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in CASES])
def test_w3c_suite_case(name: str) -> None:
    CASES[name](Service(TraceContextPropagator()))


@pytest.mark.parametrize("name", list(CASES))
def test_w3c_suite_case_discarding_invalid_tracestate(name: str) -> None:
    CASES[name](Service(TraceContextPropagator(discard_invalid_tracestate=True)))


def test_the_suite_has_every_case_and_opentelemetry_fails_the_duplicated_traceparent() -> None:
    assert len(CASES) == 40 and len(LEVEL_2) == 6
    otel = outcome(TraceContextTextMapPropagator())
    ours = outcome(TraceContextPropagator())
    assert otel["traceparent_duplicated"] is False and ours["traceparent_duplicated"] is True
    assert {n for n, ok in ours.items() if not ok} == WHOLE_HEADER


# -- traceparent ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f"00-{T.upper()}-{P}-01",  # uppercase hex
        f"00-{T}-{P.upper()}-01",
        f"00-{T}-{P}-0A",
        f"ff-{T}-{P}-01",  # version ff is forbidden
        f"00-{T}-{P}-01-extra",  # version 00 has exactly four fields
        f"cc-{T}-{P}-01x",  # a future version's flags end or are followed by "-"
        f"00-{'0' * 32}-{P}-01",
        f"00-{T}-{'0' * 16}-01",
        f"0-{T}-{P}-01",
        "",
    ],
)
def test_an_invalid_traceparent_is_refused(value: str) -> None:
    assert parse_traceparent([value]) is None


def test_a_future_version_is_read_by_its_first_four_fields_and_sent_as_00() -> None:
    parent = parse_traceparent([f"cc-{T}-{P}-03-whatever-comes-next"])
    assert parent is not None and parent.header == f"00-{T}-{P}-03"


def test_a_duplicated_traceparent_starts_a_new_trace() -> None:
    value = f"00-{T}-{P}-01"
    assert parse_traceparent([value, value]) is None
    assert context_from_headers([("traceparent", value), ("TraceParent", value)]) is None


@pytest.mark.parametrize(
    ("sent", "child"), [("00", "00"), ("01", "01"), ("02", "02"), ("03", "03")]
)
def test_the_flags_that_arrived_are_the_flags_that_leave(sent: str, child: str) -> None:
    ctx = context_from_headers(
        [("traceparent", f"00-{T}-{P}-{sent}"), ("tracestate", "congo=t61rcWkgMzE")]
    )
    assert ctx is not None
    with _TRACER.start_as_current_span("step", context=ctx) as span:
        fields = current_trace_context(span)
        out = inject_headers({})
    assert fields.trace_id == T and fields.trace_flags == int(child, 16)
    assert out["traceparent"].startswith(f"00-{T}-") and out["traceparent"].endswith(f"-{child}")
    assert out["traceparent"][36:52] != P  # a new parent id: ours
    assert out["tracestate"] == "congo=t61rcWkgMzE"


def test_flag_bits_this_version_does_not_define_are_sent_as_zero() -> None:
    parent = parse_traceparent([f"00-{T}-{P}-ff"])
    assert parent is not None and parent.flags == 0x03 and parent.header.endswith("-03")


# -- tracestate ----------------------------------------------------------------


def test_member_by_member() -> None:
    # One bad member is dropped alone: the rest belong to other vendors.
    assert parse_tracestate(["foo@=1,bar=2"]).header == "bar=2"
    assert parse_tracestate(["foo=,bar=3"]).header == "bar=3"
    assert parse_tracestate(["foo=1", "z" * 257 + "=1"]).header == "foo=1"
    parsed = parse_tracestate(["rojo=1,FOO=2,congo=3"])
    assert parsed.header == "rojo=1,congo=3"
    assert parsed.dropped == (("FOO=2", "not a key=value list member"),)


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("z" * 256, True),
        ("z" * 257, False),
        ("t" * 241 + "@" + "v" * 14, True),
        ("t" * 242 + "@v", False),
        ("t@" + "v" * 15, False),
        ("1tenant@sys", True),  # a tenant may start with a digit
        ("1simple", False),  # a simple key may not
        ("tenant@1sys", False),
        ("foo@@bar", False),
        ("foo@bar@baz", False),
        ("a_-*/0", True),
    ],
)
def test_key_format_and_lengths(key: str, valid: bool) -> None:
    assert (parse_tracestate([f"{key}=1,other=2"]).header == f"{key}=1,other=2") is valid


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("x" * 256, "x" * 256),
        ("x" * 257, None),
        (" leading", " leading"),  # leading spaces are part of the value
        ("trailing ", "trailing"),  # trailing ones are optional whitespace
        ("a=b", None),
        ("tab\there", None),
        ("é", None),
        ("", None),
    ],
)
def test_value_charset_and_length(value: str, kept: str | None) -> None:
    members = dict(parse_tracestate([f"k={value},other=2"]).members)
    assert members.get("k") == kept and members["other"] == "2"


def test_a_repeated_key_has_no_position_so_every_member_with_it_goes() -> None:
    assert parse_tracestate(["foo=1,bar=2", "foo=3"]).header == "bar=2"


def test_at_most_32_members_the_right_most_go() -> None:
    header = ",".join(f"k{i}={i}" for i in range(40))
    parsed = parse_tracestate([header])
    assert [k for k, _ in parsed.members] == [f"k{i}" for i in range(32)]
    assert len(parsed.dropped) == 8


def test_the_combined_header_is_kept_to_512_long_members_first_then_from_the_right() -> None:
    long = "long=" + "x" * 200
    short = [f"s{i:02d}={'y' * 40}" for i in range(12)]  # 12 * 44 + 11 = 539
    parsed = parse_tracestate([",".join([short[0], long, *short[1:]])])
    assert "long" not in dict(parsed.members)
    assert len(parsed.header) <= 512
    assert [k for k, _ in parsed.members] == [f"s{i:02d}" for i in range(11)]


def test_tracestate_is_not_read_without_a_valid_traceparent() -> None:
    assert context_from_headers([("tracestate", "foo=1")]) is None


def test_a_valid_tracestate_is_propagated_unchanged() -> None:
    header = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,t1@sys= spaced value"
    ctx = context_from_headers([("traceparent", f"00-{T}-{P}-01"), ("tracestate", header)])
    assert ctx is not None
    state = trace.get_current_span(ctx).get_span_context().trace_state
    assert state.to_header() == header


# -- the global propagator -----------------------------------------------------


def test_it_is_the_global_propagator_so_opentelemetry_inject_and_extract_use_it() -> None:
    # setup_tracing (tests/conftest.py) installed it.
    value = f"00-{T}-{P}-01"
    raw = [(b"traceparent", value.encode()), (b"traceparent", value.encode())]
    duplicated = propagate.extract(Headers(raw=raw))
    assert not trace.get_current_span(duplicated).get_span_context().is_valid
    ctx = propagate.extract({"TraceParent": f"00-{T}-{P}-00", "tracestate": "a=1,B=2,c=3"})
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    assert carrier["traceparent"] == f"00-{T}-{P}-00"
    assert carrier["tracestate"] == "a=1,c=3"
