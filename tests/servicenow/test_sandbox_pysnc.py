"""The ServiceNow sandbox answers pysnc, ServiceNow's own Python client."""

from __future__ import annotations

import re
import ssl
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pysnc import ServiceNowClient
from pysnc.asyncio import AsyncServiceNowClient, AsyncServiceNowPasswordGrantFlow
from pysnc.exceptions import AuthenticationException, NotFoundException, RequestException

from adapters.sandbox.servicenow import ServiceNowSandbox


class _Bearer(httpx.Auth):
    def __init__(self, header: str) -> None:
        self.header = header

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = self.header
        yield request


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _http(sn: ServiceNowSandbox) -> httpx.Client:
    return httpx.Client(base_url=sn.url, auth=(sn.username, sn.password), verify=_trust(sn))


def _trust(sn: ServiceNowSandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=sn.ca_file)


def _faults(sn: ServiceNowSandbox, **body: int) -> None:
    with _http(sn) as http:
        assert http.post("/_sandbox/faults", json=body).status_code == 200


def _account(snc: ServiceNowClient, name: str, **fields: str) -> str:
    gr = snc.GlideRecord("customer_account")
    gr.initialize()
    gr.name = name
    for key, value in fields.items():
        gr.set_value(key, value)
    sys_id = gr.insert()
    assert sys_id is not None
    return str(sys_id)


def test_insert_get_and_update_a_case(snc: ServiceNowClient) -> None:
    account = _account(snc, f"Acme {_tag()}")
    gr = snc.GlideRecord("sn_customerservice_case")
    gr.initialize()
    gr.short_description = "Onboarding"
    gr.account = account
    gr.priority = "3"
    sys_id = gr.insert()
    assert re.fullmatch(r"[0-9a-f]{32}", str(sys_id))
    assert gr.get_value("number").startswith("CS")
    # Display values come back with the values (pysnc asks for sysparm_display_value=all).
    assert gr.get_display_value("priority") == "3 - Moderate"
    assert gr.get_display_value("state") == "New"

    again = snc.GlideRecord("sn_customerservice_case")
    assert again.get(str(sys_id))
    assert again.get_value("account") == account
    assert again.get_display_value("account").startswith("Acme ")
    again.priority = "1"
    again.work_notes = "Customer is on credit hold"
    assert again.update() == sys_id
    assert again.get_value("priority") == "1"
    # work_notes is a journal: the value stays empty, the entry is in sys_journal_field.
    assert again.get_value("work_notes") == ""
    assert "Customer is on credit hold" in again.get_display_value("work_notes")
    journal = snc.GlideRecord("sys_journal_field")
    journal.add_query("element_id", str(sys_id))
    journal.add_query("element", "work_notes")
    journal.query()
    assert [j.get_value("value") for j in journal] == ["Customer is on credit hold"]
    assert again.get_value("sys_mod_count") == "1"


def test_query_with_and_like_and_order(snc: ServiceNowClient) -> None:
    tag = _tag()
    for i, name in enumerate(["Bravo", "Alpha", "Charlie"]):
        _account(snc, f"{name} {tag}", notes=f"n{i}", u_external_id=f"{tag}-{i}")
    gr = snc.GlideRecord("customer_account")
    gr.add_encoded_query(f"nameLIKE{tag}^ORDERBYDESCname")
    gr.query()
    assert [r.get_value("name") for r in gr] == [f"Charlie {tag}", f"Bravo {tag}", f"Alpha {tag}"]
    gr = snc.GlideRecord("customer_account")
    gr.add_query("u_external_id", f"{tag}-1")
    gr.add_query("notes", "n1")
    gr.query()
    assert len(gr) == 1 and gr.next() and gr.get_value("name") == f"Alpha {tag}"
    gr = snc.GlideRecord("customer_account")
    gr.add_query("u_external_id", f"{tag}-1").add_or_condition("u_external_id", f"{tag}-2")
    gr.order_by("name")
    gr.query()
    assert [r.get_value("name") for r in gr] == [f"Alpha {tag}", f"Charlie {tag}"]


def test_paging_across_batches(snc: ServiceNowClient) -> None:
    tag = _tag()
    for i in range(7):
        _account(snc, f"Page {tag} {i}")
    gr = snc.GlideRecord("customer_account", batch_size=3)
    gr.add_query("name", "STARTSWITH", f"Page {tag}")
    gr.query()
    assert len(gr) == 7  # X-Total-Count
    names = sorted(r.get_value("name") for r in gr)  # three requests, offsets 0, 3, 6
    assert names == [f"Page {tag} {i}" for i in range(7)]


def test_fields_limit_and_plain_values(
    sn_sandbox: ServiceNowSandbox, snc: ServiceNowClient
) -> None:
    tag = _tag()
    for i in range(3):
        _account(snc, f"Link {tag} {i}")
    with _http(sn_sandbox) as http:
        r = http.get(
            "/api/now/table/customer_account",
            params={
                "sysparm_query": f"nameSTARTSWITHLink {tag}^ORDERBYname",
                "sysparm_fields": "name,number",
                "sysparm_limit": "2",
                "sysparm_offset": "0",
            },
        )
    assert r.status_code == 200
    assert r.headers["X-Total-Count"] == "3"
    rows = r.json()["result"]
    assert rows == [
        {"name": f"Link {tag} 0", "number": rows[0]["number"]},
        {"name": f"Link {tag} 1", "number": rows[1]["number"]},
    ]
    links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', r.headers["Link"]))
    assert set(links) == {"first", "next", "last"}
    assert "sysparm_offset=2" in links["next"]


def test_delete_then_get_is_not_found(snc: ServiceNowClient) -> None:
    sys_id = _account(snc, f"Gone {_tag()}")
    gr = snc.GlideRecord("customer_account")
    assert gr.get(sys_id)
    assert gr.delete()
    assert not snc.GlideRecord("customer_account").get(sys_id)
    with pytest.raises(NotFoundException) as raised:
        snc.table_api.get(snc.GlideRecord("customer_account"), sys_id)
    assert raised.value.args[0]["error"]["message"] == "No Record found"


def test_errors_have_the_table_api_shape(sn_sandbox: ServiceNowSandbox) -> None:
    with _http(sn_sandbox) as http:
        unknown = http.get("/api/now/table/no_such_table")
        mandatory = http.post("/api/now/table/sn_customerservice_case", json={"priority": "2"})
        bad_choice = http.post(
            "/api/now/table/sn_customerservice_case",
            json={"short_description": "x", "priority": "9"},
        )
    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": {"message": "Invalid table no_such_table", "detail": None},
        "status": "failure",
    }
    assert mandatory.status_code == 403
    assert "mandatory: Short description" in mandatory.json()["error"]["detail"]
    assert bad_choice.status_code == 400 and bad_choice.json()["status"] == "failure"
    anonymous = httpx.get(f"{sn_sandbox.url}/api/now/table/incident", verify=_trust(sn_sandbox))
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"] == "User Not Authenticated"


def test_wrong_password_is_refused(
    sn_sandbox: ServiceNowSandbox,
    snc: ServiceNowClient,  # snc: trusts the sandbox CA
) -> None:
    client = ServiceNowClient(
        sn_sandbox.url, (sn_sandbox.username, "wrong"), verify=sn_sandbox.ca_file
    )
    with pytest.raises(AuthenticationException):
        client.GlideRecord("incident").query()


def test_a_429_carries_retry_after_and_pysnc_retries_it(
    sn_sandbox: ServiceNowSandbox, snc: ServiceNowClient
) -> None:
    _faults(sn_sandbox, rate_limit_next=1, retry_after=1)
    with _http(sn_sandbox) as http:
        r = http.get("/api/now/table/incident")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["message"] == "Rate limit exceeded"
    # pysnc's own retry (urllib3) honours Retry-After.
    _faults(sn_sandbox, rate_limit_next=1, retry_after=1)
    started = time.monotonic()
    gr = snc.GlideRecord("incident")
    gr.query()
    assert time.monotonic() - started >= 0.9
    no_retry = ServiceNowClient(
        sn_sandbox.url,
        (sn_sandbox.username, sn_sandbox.password),
        verify=sn_sandbox.ca_file,
        auto_retry=False,
    )
    _faults(sn_sandbox, rate_limit_next=1)
    with pytest.raises(RequestException):
        no_retry.GlideRecord("incident").query()


async def test_oauth_password_grant_with_the_async_client(sn_sandbox: ServiceNowSandbox) -> None:
    flow = AsyncServiceNowPasswordGrantFlow(
        sn_sandbox.username, sn_sandbox.password, sn_sandbox.client_id, sn_sandbox.client_secret
    )
    trust = _trust(sn_sandbox)
    session = await flow.authenticate(sn_sandbox.url, verify=trust)
    bearer = session.headers["Authorization"]
    await session.aclose()
    assert bearer.startswith("Bearer ")
    # pysnc's async Table API builds its requests without the session's default headers,
    # so the token rides on an httpx.Auth (applied at send) rather than on that session.
    client = AsyncServiceNowClient(sn_sandbox.url, _Bearer(bearer), verify=trust)
    try:
        gr = await client.GlideRecord("incident")
        gr.initialize()
        gr.short_description = f"Printer on fire {_tag()}"
        sys_id = await gr.insert()
        assert sys_id
        found = await client.GlideRecord("incident")
        assert await found.get(str(sys_id))
        assert found.get_value("number").startswith("INC")
    finally:
        await client.close()
    bad = AsyncServiceNowPasswordGrantFlow(
        sn_sandbox.username, "wrong", sn_sandbox.client_id, sn_sandbox.client_secret
    )
    with pytest.raises(AuthenticationException):
        await bad.authenticate(sn_sandbox.url, verify=trust)
