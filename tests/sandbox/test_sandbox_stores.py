"""The sandboxes' stores stay consistent under concurrent writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from adapters.sandbox.salesforce import Store as SalesforceStore
from adapters.sandbox.zendesk import Store as ZendeskStore


def test_salesforce_store_concurrent_creates_get_unique_ids_and_stamps() -> None:
    store = SalesforceStore()

    def work(worker: int) -> list[str]:
        return [store.create("Product2", {"Name": f"p{worker}-{i}"}) for i in range(100)]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for batch in pool.map(work, range(8)) for i in batch]
    assert len(set(ids)) == 800
    page = store.query("SELECT Id, SystemModstamp FROM Product2", version="v60.0")
    stamps = [r["SystemModstamp"] for r in page["records"]]
    assert page["totalSize"] == 800 and len(set(stamps)) == 800


def test_zendesk_store_concurrent_ticket_updates_keep_change_order() -> None:
    store = ZendeskStore()
    tickets = [store.create_ticket({"description": f"t{i}"}, "http://x") for i in range(8)]

    def work(ticket_id: int) -> None:
        for _ in range(50):
            store.update_ticket(ticket_id, {"status": "open"})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, [t["id"] for t in tickets]))
    rows, _, end = store.ticket_changes(start_time=0, after_seq=None, limit=100)
    assert end and sorted(t["id"] for t in rows) == [t["id"] for t in tickets]
