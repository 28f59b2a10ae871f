"""The Zendesk sandbox answers zenpy, Zendesk's own Python client."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from zenpy.lib.api_objects import Organization, Ticket
from zenpy.lib.exception import APIException

from adapters.sandbox.zendesk import ZendeskSandbox


def _http(zd: ZendeskSandbox) -> httpx.Client:
    return httpx.Client(base_url=zd.url, auth=(f"{zd.email}/token", zd.api_token))


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def test_organizations_create_update_and_find_by_external_id(zenpy_client: Any) -> None:
    tag = _tag()
    org = zenpy_client.organizations.create(
        Organization(
            name=f"Acme {tag}",
            external_id=f"001{tag}",
            organization_fields={"entitlement": [], "tier": "gold"},
            tags=["interlock"],
        )
    )
    assert org.id and org.external_id == f"001{tag}"
    org.organization_fields = {"entitlement_status": "active"}
    updated = zenpy_client.organizations.update(org)
    # Zendesk merges organization_fields: keys not sent keep their values.
    assert updated.organization_fields == {
        "entitlement": [],
        "tier": "gold",
        "entitlement_status": "active",
    }
    found = list(zenpy_client.organizations(external_id=f"001{tag}"))  # show_many.json
    assert [o.id for o in found] == [org.id]
    assert zenpy_client.organizations(id=org.id).name == f"Acme {tag}"


def test_organization_search_endpoint_by_external_id(zd_sandbox: ZendeskSandbox) -> None:
    # zenpy's organizations.external() glues "?include=..." onto the external_id
    # (a client bug that real Zendesk sees too), so the endpoint is driven directly.
    tag = _tag()
    with _http(zd_sandbox) as http:
        created = http.post(
            "/api/v2/organizations.json",
            json={"organization": {"name": f"Search {tag}", "external_id": f"x{tag}"}},
        )
        assert created.status_code == 201
        body = http.get("/api/v2/organizations/search.json", params={"external_id": f"x{tag}"})
        assert [o["id"] for o in body.json()["organizations"]] == [
            created.json()["organization"]["id"]
        ]
        assert (
            http.get("/api/v2/organizations/search.json", params={"external_id": "none"}).json()[
                "organizations"
            ]
            == []
        )


def test_tickets_create_update_and_filter_by_external_id(zenpy_client: Any) -> None:
    tag = _tag()
    org = zenpy_client.organizations.create(Organization(name=f"T {tag}"))
    audit = zenpy_client.tickets.create(
        Ticket(
            subject="Onboarding",
            description="Please onboard",
            organization_id=org.id,
            external_id=f"k-{tag}",
            priority="normal",
            tags=["onboarding"],
        )
    )
    ticket = audit.ticket
    assert ticket.status == "new" and ticket.organization_id == org.id
    ticket.status = "open"
    assert zenpy_client.tickets.update(ticket).ticket.status == "open"
    assert [t.id for t in zenpy_client.tickets(external_id=f"k-{tag}")] == [ticket.id]
    assert list(zenpy_client.tickets(external_id=f"none-{tag}")) == []
    assert zenpy_client.tickets(id=ticket.id).status == "open"


def test_record_invalid_maps_to_zenpy_api_exception(zenpy_client: Any) -> None:
    with pytest.raises(APIException) as blank:
        zenpy_client.tickets.create(Ticket(subject="no description"))
    body = json.loads(str(blank.value))
    assert body["error"] == "RecordInvalid"
    assert body["details"]["description"][0]["error"] == "BlankValue"
    tag = _tag()
    zenpy_client.organizations.create(Organization(name=f"Dup {tag}"))
    with pytest.raises(APIException) as duplicate:
        zenpy_client.organizations.create(Organization(name=f"Dup {tag}"))
    assert "DuplicateValue" in str(duplicate.value)
    with pytest.raises(APIException) as bad_status:
        zenpy_client.tickets.create(Ticket(description="x", status="weird"))
    assert "status" in json.loads(str(bad_status.value))["details"]


def test_wrong_token_is_refused(zd_sandbox: ZendeskSandbox) -> None:
    answer = httpx.get(
        f"{zd_sandbox.url}/api/v2/tickets.json", auth=(f"{zd_sandbox.email}/token", "wrong")
    )
    assert answer.status_code == 401
    assert answer.json() == {"error": "Couldn't authenticate you"}


def test_zenpy_follows_cursor_pagination(zenpy_client: Any, zd_sandbox: ZendeskSandbox) -> None:
    tag = _tag()
    with _http(zd_sandbox) as http:
        for i in range(105):
            http.post(
                "/api/v2/organizations.json",
                json={"organization": {"name": f"page {tag} {i}"}},
            ).raise_for_status()
        offset = http.get("/api/v2/organizations.json", params={"per_page": 2}).json()
        assert offset["count"] >= 105 and "page=2" in offset["next_page"]
    names = {o.name for o in zenpy_client.organizations()}  # page[size]=100, links.next
    assert {f"page {tag} {i}" for i in range(105)} <= names


def test_incremental_ticket_export_with_cursor(zd_sandbox: ZendeskSandbox) -> None:
    tag = _tag()
    with _http(zd_sandbox) as http:
        start = int(time.time()) - 1
        first = http.post(
            "/api/v2/tickets.json",
            json={"ticket": {"comment": {"body": "a"}, "external_id": f"a{tag}"}},
        ).json()["ticket"]
        page = http.get(
            "/api/v2/incremental/tickets/cursor.json", params={"start_time": start}
        ).json()
        assert first["id"] in [t["id"] for t in page["tickets"]]
        assert page["end_of_stream"] is True and page["after_cursor"]
        second = http.post(
            "/api/v2/tickets.json",
            json={"ticket": {"comment": {"body": "b"}, "external_id": f"b{tag}"}},
        ).json()["ticket"]
        http.put(f"/api/v2/tickets/{first['id']}.json", json={"ticket": {"status": "solved"}})
        more = http.get(page["after_url"]).json()
        assert [t["id"] for t in more["tickets"]] == [second["id"], first["id"]]
        assert more["tickets"][1]["status"] == "solved"
        assert http.get(more["after_url"]).json()["tickets"] == []
        bad = http.get("/api/v2/incremental/tickets/cursor.json")
        assert bad.status_code == 400


def test_rate_limit_carries_integer_retry_after_and_zenpy_waits_it_out(
    zenpy_client: Any, zd_sandbox: ZendeskSandbox
) -> None:
    with _http(zd_sandbox) as http:
        http.post("/_sandbox/faults", json={"rate_limit_next": 1, "retry_after": 2})
        limited = http.get("/api/v2/tickets.json")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
        http.post("/_sandbox/faults", json={"rate_limit_next": 1, "retry_after": 1})
    began = time.monotonic()
    zenpy_client.organizations.create(Organization(name=f"after wait {_tag()}"))
    assert time.monotonic() - began >= 1.0


def test_idempotency_key_replays_the_first_ticket(zd_sandbox: ZendeskSandbox) -> None:
    key = f"idem-{_tag()}"
    body = {"ticket": {"comment": {"body": "once"}}}
    with _http(zd_sandbox) as http:
        first = http.post("/api/v2/tickets.json", json=body, headers={"Idempotency-Key": key})
        again = http.post("/api/v2/tickets.json", json=body, headers={"Idempotency-Key": key})
        assert first.json()["ticket"]["id"] == again.json()["ticket"]["id"]
        assert again.headers["x-idempotency-lookup"] == "hit"
        other = http.post(
            "/api/v2/tickets.json",
            json={"ticket": {"comment": {"body": "other"}}},
            headers={"Idempotency-Key": key},
        )
        assert other.status_code == 400 and other.json()["error"] == "IdempotentRequestError"
        missing = http.get("/api/v2/tickets/999999.json")
        assert missing.status_code == 404 and missing.json()["error"] == "RecordNotFound"


def test_stop_is_safe_twice() -> None:
    sandbox = ZendeskSandbox()
    sandbox.stop()
    sandbox.stop()
    assert sandbox.api_token not in repr(sandbox)


def test_malformed_bodies_and_unknown_paths(zd_sandbox: ZendeskSandbox) -> None:
    with _http(zd_sandbox) as http:
        bad = http.post("/api/v2/tickets.json", content=b"{nope")
        assert bad.status_code == 400 and bad.json()["error"] == "InvalidValue"
        shape = http.post("/api/v2/organizations.json", json={"name": "no wrapper"})
        assert shape.status_code == 400
        unknown = http.get("/api/v2/macros.json")
        assert unknown.status_code == 404 and unknown.json()["error"] == "InvalidEndpoint"
        faults = http.post("/_sandbox/faults", json={"fail_next": -1})
        assert faults.status_code == 400
