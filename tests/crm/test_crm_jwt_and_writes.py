"""The CRM adapter as a connected app (OAuth 2.0 JWT bearer) and its writes, against the
Salesforce sandbox; what it wrote is read back with simple-salesforce, the vendor's client."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce.api import Salesforce

from adapters import RetryPolicy
from adapters.crm import (
    JwtBearer,
    JwtBearerAuth,
    SalesforceAdapter,
    SalesforceValidationError,
    SessionRejected,
    TokenRequestRefused,
)
from adapters.crm.plugin import CrmSettings, open_adapter
from adapters.flows import StepOutcome, StepRunner
from adapters.flows._quote_to_cash import QuoteToCash
from adapters.sandbox.salesforce import SalesforceSandbox
from collector import EmbeddedBus
from tracing import ConfigError, Event, Reason, Status, System, correlation_id_for


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SalesforceSandbox]:
    # Its own sandbox: these tests end and shorten sessions, which must not reach others.
    with SalesforceSandbox() as sb:
        yield sb


@pytest.fixture(autouse=True)
def _normal_sessions(sandbox: SalesforceSandbox) -> Iterator[None]:
    sandbox.control("sessions", {"session_seconds": 7200, "expire": True})
    yield


def _jwt(sandbox: SalesforceSandbox, **overrides: Any) -> JwtBearer:
    fields: dict[str, Any] = dict(
        login_url=sandbox.url,
        consumer_key=sandbox.consumer_key,
        username=sandbox.username,
        private_key=Path(sandbox.jwt_key_file).read_text(),
    )
    return JwtBearer(**{**fields, **overrides})


def _token_requests(sandbox: SalesforceSandbox) -> int:
    stats: Any = sandbox.stats()
    return int(stats["token_requests"].get("urn:ietf:params:oauth:grant-type:jwt-bearer", 0))


def _vendor(sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    # requests lets REQUESTS_CA_BUNDLE override a session's verify.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_file)
    return Salesforce(session_id=sandbox.token, instance_url=sandbox.url, version="60.0")


@pytest.fixture
async def crm(sandbox: SalesforceSandbox) -> AsyncIterator[SalesforceAdapter]:
    async with SalesforceAdapter(
        sandbox.url, jwt=_jwt(sandbox), verify=sandbox.ca_file, timeout=5.0
    ) as sf:
        yield sf


def _opportunity(sandbox: SalesforceSandbox) -> str:
    with httpx.Client(
        base_url=f"{sandbox.url}/services/data/v60.0",
        headers={"Authorization": f"Bearer {sandbox.token}"},
        verify=ssl.create_default_context(cafile=sandbox.ca_file),
    ) as http:
        account = http.post("/sobjects/Account/", json={"Name": "Globex"}).json()["id"]
        answer = http.post(
            "/sobjects/Opportunity/",
            json={
                "Name": "Globex renewal",
                "AccountId": account,
                "StageName": "Closed Won",
                "CloseDate": "2026-05-01",
            },
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


async def test_jwt_bearer_sign_in_gives_a_session_the_vendor_client_accepts(
    crm: SalesforceAdapter, sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _token_requests(sandbox)
    assert await crm.health() is True
    assert _token_requests(sandbox) == before + 1
    assert isinstance(crm.auth, JwtBearerAuth) and crm.auth.requests == 1
    session = await crm.auth.token()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_file)
    vendor = Salesforce(session_id=session, instance_url=sandbox.url, version="60.0")
    assert "DailyApiRequests" in vendor.limits()
    # Neither the key nor the session shows in a repr.
    key = _jwt(sandbox).private_key
    for text in (repr(crm), repr(crm.auth), repr(_jwt(sandbox))):
        assert session not in text and key not in text and "PRIVATE" not in text


async def test_a_bad_signature_is_a_named_error_with_one_token_request(
    sandbox: SalesforceSandbox,
) -> None:
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    before = _token_requests(sandbox)
    async with SalesforceAdapter(
        sandbox.url, jwt=_jwt(sandbox, private_key=pem), verify=sandbox.ca_file
    ) as crm:
        bus = EmbeddedBus(partitions=1)
        await bus.start()
        try:
            runner = StepRunner(bus, RetryPolicy(max_attempts=5), sleep=_no_sleep)
            opp = "006Wz0000000001AAA"

            async def action(_: str) -> StepOutcome:
                await crm.publish_order_status(opp, "confirmed")
                return StepOutcome("opportunity", opp)

            outcome = await runner.run(
                _cause(opp), kind="x.done", step="crm.order.status", target="crm", action=action
            )
        finally:
            await bus.stop()
    # Not retriable: one try, one token request, no storm on the token endpoint.
    assert outcome.status == Status.DEAD_LETTERED and outcome.attempt == 1
    assert outcome.error is not None and outcome.error.reason == Reason.AUTH
    assert outcome.error.error_type == "TokenRequestRefused"
    assert "invalid_grant" in outcome.error.message and "PRIVATE" not in outcome.error.message
    assert _token_requests(sandbox) == before + 1


async def test_an_expired_assertion_is_refused_by_name(sandbox: SalesforceSandbox) -> None:
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=sandbox.ca_file)) as c:
        auth = JwtBearerAuth(c, _jwt(sandbox), wall=lambda: time.time() - 3600)
        crm = SalesforceAdapter(sandbox.url, auth=auth, client=c)
        with pytest.raises(TokenRequestRefused) as info:
            await crm.opportunity_changes(datetime(2026, 1, 1, tzinfo=UTC))
    assert info.value.oauth_error == "invalid_grant" and info.value.retriable is False
    assert "expired" in str(info.value) and auth.requests == 1


async def test_other_refusals_name_the_claim(sandbox: SalesforceSandbox) -> None:
    for overrides, why in (
        ({"username": "someone@else.example"}, "user hasn't approved this consumer"),
        ({"consumer_key": "3MVGnotthisapp"}, "invalid client identifier"),
        ({"audience": "https://login.example.org"}, "audience is invalid"),
    ):
        async with SalesforceAdapter(
            sandbox.url, jwt=_jwt(sandbox, **overrides), verify=sandbox.ca_file
        ) as crm:
            with pytest.raises(TokenRequestRefused, match=why):
                await crm.load_order("006Wz0000000001AAA")


async def test_a_session_past_its_timeout_is_renewed_before_use(
    sandbox: SalesforceSandbox,
) -> None:
    sandbox.control("sessions", {"session_seconds": 1})
    async with SalesforceAdapter(
        sandbox.url, jwt=_jwt(sandbox, session_seconds=1), verify=sandbox.ca_file
    ) as crm:
        assert await crm.health() is True
        first = await crm.auth.token()
        await asyncio.sleep(1.2)  # the org's session timeout passes mid-run
        await crm.opportunity_changes(datetime(2026, 1, 1, tzinfo=UTC))
        assert isinstance(crm.auth, JwtBearerAuth) and crm.auth.requests == 2
        assert await crm.auth.token() != first


async def test_a_401_renews_the_session_once_and_the_call_succeeds(
    crm: SalesforceAdapter, sandbox: SalesforceSandbox
) -> None:
    opp = _opportunity(sandbox)
    await crm.health()
    ended: Any = sandbox.control("sessions", {"expire": True})
    assert ended["expired"] == 1
    before = _token_requests(sandbox)
    await crm.publish_order_status(opp, "confirmed")
    assert _token_requests(sandbox) == before + 1
    assert isinstance(crm.auth, JwtBearerAuth) and crm.auth.requests == 2


async def test_a_fresh_session_refused_again_is_session_rejected(
    crm: SalesforceAdapter, sandbox: SalesforceSandbox
) -> None:
    # The org ends every session at once: the renewal is refused too, and it stops there.
    sandbox.control("sessions", {"session_seconds": 0.001})
    before = _token_requests(sandbox)
    with pytest.raises(SessionRejected) as info:
        await crm.opportunity_changes(datetime(2026, 1, 1, tzinfo=UTC))
    assert info.value.retriable is False and info.value.status == 401
    assert _token_requests(sandbox) == before + 2  # the first session and one renewal


async def test_concurrent_calls_share_one_token_request(
    crm: SalesforceAdapter, sandbox: SalesforceSandbox
) -> None:
    before = _token_requests(sandbox)
    assert all(await asyncio.gather(*(crm.health() for _ in range(12))))
    assert _token_requests(sandbox) == before + 1
    # And after the org ends the session, the 401s of many callers renew it once.
    sandbox.control("sessions", {"expire": True})
    assert all(await asyncio.gather(*(crm.health() for _ in range(12))))
    assert _token_requests(sandbox) == before + 2


async def test_sobject_update_is_visible_to_the_vendor_client(
    crm: SalesforceAdapter, sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    opp = _opportunity(sandbox)
    await crm.update_record("Opportunity", opp, {"Payment_Terms__c": "NET60"})
    await crm.publish_order_status(opp, "processing")
    record = _vendor(sandbox, monkeypatch).Opportunity.get(opp)
    assert record["ERP_Order_Status__c"] == "processing"
    assert record["Payment_Terms__c"] == "NET60"
    with pytest.raises(SalesforceValidationError) as info:
        await crm.update_record("Opportunity", opp, {"ERP_Order_Status__c": "shipped"})
    assert info.value.error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert info.value.field == "ERP_Order_Status__c" and info.value.retriable is False
    with pytest.raises(SalesforceValidationError) as info:
        await crm.update_record("Opportunity", opp, {"No_Such__c": 1})
    assert info.value.error_code == "INVALID_FIELD" and info.value.field == "No_Such__c"


async def test_task_create_is_visible_and_once_per_key_under_replay(
    crm: SalesforceAdapter, sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    opp = _opportunity(sandbox)
    key = f"crm.task:{opp}:hold"

    async def create() -> Any:
        return await crm.create_task(
            what_id=opp, subject="Credit hold", idempotency_key=key, priority="High"
        )

    first = await create()
    assert first.created is True
    # A replay, then two duplicates at once: still one Task.
    again = await create()
    twins = await asyncio.gather(create(), create())
    assert again == type(first)(first.task_id, created=False)
    assert {t.task_id for t in twins} == {first.task_id}
    vendor = _vendor(sandbox, monkeypatch)
    rows = vendor.query(f"SELECT Id, Subject, Priority, WhatId FROM Task WHERE WhatId = '{opp}'")
    assert rows["totalSize"] == 1
    (task,) = rows["records"]
    assert (task["Id"], task["Subject"], task["Priority"]) == (first.task_id, "Credit hold", "High")
    with pytest.raises(SalesforceValidationError) as info:
        await crm.create_task(
            what_id=opp, subject="x", idempotency_key=key + ":2", priority="Urgent"
        )
    assert info.value.field == "Priority"


async def test_the_erp_status_is_published_to_the_opportunity_under_the_order(
    crm: SalesforceAdapter, sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    opp = _opportunity(sandbox)
    bus = EmbeddedBus(partitions=1)
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    bus.subscribe("test", record)
    await bus.start()
    try:
        flow = QuoteToCash(
            bus,
            StepRunner(bus, RetryPolicy(max_attempts=2), sleep=_no_sleep),
            crm=crm,
            erp=None,  # type: ignore[arg-type]  # the status step reads only the cause
            billing=_NoBilling(),  # type: ignore[arg-type]
            support=None,  # type: ignore[arg-type]
        )
        confirmed = _cause(opp, kind="order.confirmed", erp_state="processing")
        await flow._publish_status(confirmed)
        await bus.drain()
    finally:
        await bus.stop()
    (published,) = [e for e in seen if e.kind == "order.status.published"]
    assert published.status == Status.OK and published.step == "crm.order.status"
    assert published.correlation_id == correlation_id_for("crm", "opportunity", opp)
    assert published.causation_id == confirmed.event_id and published.target == "crm"
    assert published.idempotency_key == f"crm.order.status:{opp}:processing"
    record_ = _vendor(sandbox, monkeypatch).Opportunity.get(opp)
    assert record_["ERP_Order_Status__c"] == "processing"


def test_the_crm_section_prefers_jwt_and_names_what_is_missing(
    sandbox: SalesforceSandbox, tmp_path: Path
) -> None:
    jwt_settings = CrmSettings(
        instance_url=sandbox.url,
        consumer_key=sandbox.consumer_key,
        username=sandbox.username,
        private_key_file=sandbox.jwt_key_file,
        access_token="static",  # type: ignore[arg-type]
    )
    adapter = open_adapter(jwt_settings)
    assert isinstance(adapter.auth, JwtBearerAuth)
    with pytest.raises(ConfigError) as info:
        open_adapter(CrmSettings(instance_url=sandbox.url))
    assert info.value.setting == "crm.consumer_key"
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError) as info:
        open_adapter(jwt_settings.model_copy(update={"private_key_file": str(missing)}))
    assert info.value.setting == "crm.private_key_file"
    with pytest.raises(ConfigError) as info:
        open_adapter(jwt_settings.model_copy(update={"username": None}))
    assert info.value.setting == "crm.username"


class _NoBilling:
    pass


async def _no_sleep(_: float) -> None:
    return None


def _cause(opp: str, *, kind: str = "order.confirmed", **payload: Any) -> Event:
    return Event(
        correlation_id=correlation_id_for("crm", "opportunity", opp),
        source=System.ERP,
        target=System.INTERLOCK,
        kind=kind,
        entity_type="sales_order",
        entity_id=opp,
        status=Status.OK,
        step="erp.order.confirm",
        idempotency_key=f"erp.order.confirm:{opp}",
        payload={"order_ref": opp, **payload},
    )
