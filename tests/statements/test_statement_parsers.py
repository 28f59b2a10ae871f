"""The strict readers: what the writers write reads back; a cut file is refused or
reads the same (never a shorter statement); the format is told by content."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.statements import MalformedStatement, _camt053, _mt940, parse_file

WRITERS = [_mt940, _camt053]
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2)
texts = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters=" _-"),
    min_size=1,
    max_size=40,
).filter(lambda t: t.strip())
lines = st.lists(
    st.tuples(amounts, st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True), texts.map(str.strip)),
    min_size=1,
    max_size=6,
)
DAY = datetime.date(2026, 12, 3)


@pytest.mark.parametrize("writer", WRITERS, ids=["mt940", "camt.053"])
@given(items=lines)
@settings(max_examples=40, deadline=None)
def test_what_is_written_reads_back(writer, items) -> None:
    parsed = parse_file(writer.write("S1", "NL91ABNA0417164300", "USD", DAY, items))
    assert parsed.format == writer.FORMAT
    assert parsed.account == "NL91ABNA0417164300" and parsed.currency == "USD"
    assert [(ln.amount, ln.reference) for ln in parsed.lines] == [(a, r) for a, r, _ in items]
    assert [ln.remittance for ln in parsed.lines] == [" ".join(t.split()) for _, _, t in items]
    assert parsed.closing == sum((a for a, _, _ in items), Decimal(0))


@pytest.mark.parametrize("writer", WRITERS, ids=["mt940", "camt.053"])
@given(items=lines, data=st.data())
@settings(max_examples=60, deadline=None)
def test_a_cut_file_is_refused_or_reads_the_same(writer, items, data) -> None:
    whole = writer.write("S1", "NL91ABNA0417164300", "USD", DAY, items)
    cut = data.draw(st.integers(min_value=0, max_value=len(whole) - 1))
    try:
        parsed = parse_file(whole[:cut])
    except MalformedStatement:
        return
    # Only a cut in trailing characters that change nothing may pass.
    assert parsed == parse_file(whole)


def test_the_reasons_name_what_is_wrong() -> None:
    whole = _mt940.write("S1", "X1", "USD", DAY, [(Decimal("5"), "R1", "Invoice in_1")])
    with pytest.raises(MalformedStatement, match="closing balance :62F: is missing"):
        parse_file(whole.split(b":62F:")[0])
    unbalanced = whole.replace(b":62F:C261203USD5,00", b":62F:C261203USD6,00")
    with pytest.raises(MalformedStatement, match="lines are missing or extra"):
        parse_file(unbalanced)
    with pytest.raises(MalformedStatement, match="format is unknown"):
        parse_file(b"date,amount\n2026-12-03,5\n")
    with pytest.raises(MalformedStatement, match="empty"):
        parse_file(b"  \n")
    camt = _camt053.write("S1", "X1", "USD", DAY, [(Decimal("5"), "R1", "Invoice in_1")])
    with pytest.raises(MalformedStatement, match="summary states 2 entries"):
        parse_file(camt.replace(b"<NbOfNtries>1<", b"<NbOfNtries>2<"))
