"""The hash-chained audit trail: any altered or removed entry is detected."""

from __future__ import annotations

from pathlib import Path

from replay_support import OPERATOR, failed_order, seed

from replay import FileAuditHead, MemoryAuditHead, ReplayService, Selection


async def _trail(lineage, make_service, head=None) -> ReplayService:
    """Three audited actions: two ignores and one replay request."""
    pairs = [failed_order() for _ in range(3)]
    await seed(lineage, *pairs)
    service = await make_service(audit_head=head or MemoryAuditHead())
    await service.ignore(pairs[0][1].event_id, OPERATOR, reason="test deal")
    await service.ignore(pairs[1][1].event_id, OPERATOR, reason="duplicate")
    await service.request(Selection(event_id=pairs[2][1].event_id), OPERATOR, reason="retry")
    return service  # type: ignore[no-any-return]


async def test_an_untouched_trail_verifies(lineage, make_service) -> None:
    service = await _trail(lineage, make_service)
    verdict = await service.verify_audit()
    assert verdict.ok and verdict.entries == 3
    assert (verdict.last_seq, verdict.head_seq) == (3, 3)
    assert verdict.problems == [] and verdict.warnings == []
    entries, total = await service.audit()
    assert total == 3
    assert entries[1]["prev_hash"] == entries[2]["hash"]  # newest first; each commits to the last


async def test_an_altered_entry_is_detected(lineage, make_service) -> None:
    service = await _trail(lineage, make_service)
    await lineage.write(
        lambda c: c.execute("UPDATE audit_log SET why = 'nothing to see' WHERE seq = 2")
    )
    verdict = await service.verify_audit()
    assert not verdict.ok
    assert verdict.problems == ["entry 2 was altered (its hash does not match)"]


async def test_a_rehashed_entry_still_breaks_the_chain(lineage, make_service) -> None:
    service = await _trail(lineage, make_service)
    # A forger who recomputes entry 2's own hash still breaks entry 3's link.
    await lineage.write(
        lambda c: c.execute("UPDATE audit_log SET hash = repeat('a', 64) WHERE seq = 2")
    )
    verdict = await service.verify_audit()
    assert "entry 3 does not link to the entry before it" in verdict.problems


async def test_a_removed_entry_is_detected(lineage, make_service) -> None:
    service = await _trail(lineage, make_service)
    await lineage.write(lambda c: c.execute("DELETE FROM audit_log WHERE seq = 2"))
    verdict = await service.verify_audit()
    assert not verdict.ok
    assert verdict.problems == [
        "entries 2..2 are missing",
        "entry 3 does not link to the entry before it",
    ]


async def test_removing_the_newest_entries_is_detected_by_the_head(
    lineage, make_service, tmp_path: Path
) -> None:
    head = FileAuditHead(tmp_path / "audit.head")
    service = await _trail(lineage, make_service, head)
    await lineage.write(lambda c: c.execute("DELETE FROM audit_log WHERE seq >= 2"))
    verdict = await service.verify_audit()
    assert not verdict.ok
    assert verdict.problems == [
        "the newest entries were removed: the head records entry 3, the table ends at 1"
    ]
    # The head lives outside the database: a restarted service still sees it.
    restarted = await make_service(audit_head=FileAuditHead(tmp_path / "audit.head"))
    assert not (await restarted.verify_audit()).ok


async def test_without_an_outside_head_the_limit_is_stated(lineage, make_service) -> None:
    await _trail(lineage, make_service)
    fresh = await make_service(audit_head=MemoryAuditHead())  # e.g. after a restart
    verdict = await fresh.verify_audit()
    assert verdict.ok
    assert verdict.warnings == [
        "no head is recorded outside the table: removal of the newest entries cannot be detected"
    ]
