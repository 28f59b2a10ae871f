"""Quote-to-cash's entitlement step on either support desk, against the real
sandboxes (Zendesk, ServiceNow) through the real adapters; CRM, ERP and billing are
the in-memory fakes. Which desk the flow uses is configuration: ``[support] desk``."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters import Customer, OrderLine, RetryPolicy, SalesOrder
from adapters.flows import QuoteToCash, StepRunner
from adapters.flows.plugin import QuoteToCashPlugin
from adapters.sandbox.servicenow import ServiceNowSandbox
from adapters.sandbox.zendesk import ZendeskSandbox
from adapters.servicenow import ServiceNowAdapter
from adapters.servicenow.plugin import ServiceNowPlugin, ServiceNowSettings
from adapters.support import ZendeskAdapter
from adapters.support.plugin import SupportPlugin, SupportSettings
from collector import EmbeddedBus, Host, Settings, SystemInfo, load_settings
from tracing import ConfigError, Event, Reason, Status, correlation_id_for

from ._fakes import FakeBilling, FakeCrm, FakeErp

STEP = "support.entitlement.activate"


@pytest.fixture(scope="module")
def zd_sandbox() -> Iterator[ZendeskSandbox]:
    with ZendeskSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def sn_sandbox() -> Iterator[ServiceNowSandbox]:
    with ServiceNowSandbox() as sandbox:
        yield sandbox


@dataclass
class Desk:
    """One desk under test: its adapter, and how to make it refuse or throttle."""

    name: str
    adapter: Any
    control: httpx.Client

    def throttle_next(self, retry_after: int) -> None:
        body = {"rate_limit_next": 1, "retry_after": retry_after}
        assert self.control.post("/_sandbox/faults", json=body).status_code == 200

    def refuse(self, customer: Customer) -> None:
        """Make the desk answer the step with a 4xx for ``customer``'s order."""
        if self.name == "zendesk":
            # Another organization already has the name: 422 RecordInvalid (DuplicateValue).
            r = self.control.post(
                "/api/v2/organizations.json",
                json={"organization": {"name": customer.name, "external_id": "someone-else"}},
            )
        else:
            # An administrator's data policy makes a field Interlock does not send mandatory.
            r = self.control.post(
                "/_sandbox/data_policy",
                json={"table": "sn_customerservice_case", "field": "contact"},
            )
        assert r.status_code in (200, 201), r.text

    def forgive(self) -> None:
        if self.name == "servicenow":
            body = {"table": "sn_customerservice_case", "field": "contact", "mandatory": False}
            assert self.control.post("/_sandbox/data_policy", json=body).status_code == 200

    def case_count(self, key: str) -> int:
        if self.name == "zendesk":
            r = self.control.get("/api/v2/tickets.json", params={"external_id": key})
            return len(r.json()["tickets"])
        r = self.control.get(
            "/api/now/table/sn_customerservice_case",
            params={"sysparm_query": f"correlation_id={key}"},
        )
        return int(r.headers["X-Total-Count"])


@pytest.fixture(params=["zendesk", "servicenow"])
async def desk(
    request: pytest.FixtureRequest, zd_sandbox: ZendeskSandbox, sn_sandbox: ServiceNowSandbox
) -> AsyncIterator[Desk]:
    adapter: Any
    if request.param == "zendesk":
        adapter = ZendeskAdapter(zd_sandbox.url, zd_sandbox.email, zd_sandbox.api_token)
        control = httpx.Client(
            base_url=zd_sandbox.url, auth=(f"{zd_sandbox.email}/token", zd_sandbox.api_token)
        )
    else:
        adapter = ServiceNowAdapter(
            sn_sandbox.url,
            username=sn_sandbox.username,
            password=sn_sandbox.password,
            ca_file=sn_sandbox.ca_file,
        )
        control = httpx.Client(
            base_url=sn_sandbox.url,
            auth=(sn_sandbox.username, sn_sandbox.password),
            verify=ssl.create_default_context(cafile=sn_sandbox.ca_file),
        )
    try:
        yield Desk(request.param, adapter, control)
    finally:
        control.close()
        await adapter.aclose()


class Run:
    """The flow on an embedded bus with ``desk`` as its support port."""

    def __init__(self, desk: Desk) -> None:
        self.bus = EmbeddedBus(partitions=2)
        self.seen: list[Event] = []
        self.sleeps: list[float] = []
        self.crm = FakeCrm()

        async def record(event: Event) -> None:
            self.seen.append(event)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)  # the delay the runner chose; no real wait

        self.bus.subscribe("recorder", record)
        self.flow = QuoteToCash(
            self.bus,
            StepRunner(self.bus, RetryPolicy(max_attempts=3), sleep=sleep),
            crm=self.crm,
            erp=FakeErp(),
            billing=FakeBilling(),
            support=desk.adapter,
        )
        self.flow.attach()

    def won_order(self) -> SalesOrder:
        """A new order the CRM reports won (a fresh customer, so tests never collide)."""
        tag = uuid.uuid4().hex[:8]
        order = SalesOrder(
            order_ref=f"006{tag}",
            customer=Customer(customer_id=f"001{tag}", name=f"Acme {tag}"),
            currency="USD",
            lines=[OrderLine(sku="PLAT-PRO", quantity=Decimal(2), unit_price=Decimal("199"))],
        )
        self.crm.orders[order.order_ref] = order
        return order

    async def run(self, order: SalesOrder) -> list[Event]:
        """Deliver the closed-won trigger; the entitlement step's events for it."""
        cid = correlation_id_for("crm", "opportunity", order.order_ref)
        await self.bus.publish(
            Event(
                correlation_id=cid,
                idempotency_key=f"crm.opportunity.closed_won:{order.order_ref}",
                step="crm.opportunity.closed_won",
                source="crm",
                kind="opportunity.closed_won",
                entity_type="opportunity",
                entity_id=order.order_ref,
                status=Status.OK,
                event_time=datetime.now(UTC),
                payload={"order_ref": order.order_ref},
            )
        )
        await self.bus.drain()
        return [e for e in self.seen if e.correlation_id == cid and e.step == STEP]


@pytest.fixture
async def run(desk: Desk) -> AsyncIterator[Run]:
    r = Run(desk)
    await r.bus.start()
    try:
        yield r
    finally:
        await r.bus.stop()


async def test_the_entitlement_step_opens_one_case_on_the_desk(desk: Desk, run: Run) -> None:
    order = run.won_order()
    steps = await run.run(order)
    assert [(e.status, e.kind) for e in steps] == [(Status.OK, "entitlement.activated")]
    # The lineage (and so the explorer) shows the step against the desk's own system.
    assert steps[0].target == desk.adapter.system
    assert steps[0].target == {"zendesk": "support", "servicenow": "servicenow"}[desk.name]
    assert isinstance(steps[0].payload["organization_id"], str)
    key = f"support.entitlement:{order.order_ref}"
    assert desk.case_count(key) == 1
    # A redelivered trigger finds the case the first one opened.
    await run.run(order)
    assert desk.case_count(key) == 1


async def test_a_desk_that_refuses_the_write_is_a_dead_letter_with_the_reason(
    desk: Desk, run: Run
) -> None:
    order = run.won_order()
    desk.refuse(order.customer)
    try:
        steps = await run.run(order)
    finally:
        desk.forgive()
    assert [e.status for e in steps] == [Status.DEAD_LETTERED]
    dead = steps[0]
    assert dead.error is not None and dead.error.reason == Reason.VALIDATION
    assert dead.attempt == 1  # bad input is not retried
    assert dead.target == desk.adapter.system
    assert run.sleeps == []


async def test_a_429_from_the_desk_is_retried_after_its_retry_after(desk: Desk, run: Run) -> None:
    order = run.won_order()
    desk.throttle_next(retry_after=7)
    steps = await run.run(order)
    assert [e.status for e in steps] == [Status.RETRYING, Status.OK]
    retry = steps[0]
    assert retry.error is not None and retry.error.reason == Reason.RATE_LIMIT
    assert retry.payload["retry_in_s"] == 7.0 and run.sleeps == [7.0]
    assert steps[1].attempt == 2


# -- configuration: which desk ---------------------------------------------------------


class _System:
    """A connected system a test hands the host (the flow's other ports)."""

    def __init__(self, name: str, adapter: object) -> None:
        self.name, self.adapter = name, adapter
        self.after: tuple[str, ...] = ()
        self.sections: dict[str, Any] = {}

    async def install(self, host: Host) -> None:
        host.add_system(SystemInfo(self.name, self.name.upper()), self.adapter)  # type: ignore[arg-type]


async def _install(settings: Settings) -> Host:
    host = Host(settings, bus=EmbeddedBus(), api_url="http://127.0.0.1:1")
    for name, fake in (("crm", FakeCrm()), ("erp", FakeErp()), ("billing", FakeBilling())):
        await _System(name, fake).install(host)
    await SupportPlugin().install(host)
    await ServiceNowPlugin().install(host)
    await QuoteToCashPlugin().install(host)
    return host


async def test_the_desk_is_chosen_by_configuration(sn_sandbox: ServiceNowSandbox) -> None:
    settings = load_settings(env={"INTERLOCK_SUPPORT_DESK": "servicenow"})
    assert settings.section("support", SupportSettings).desk == "servicenow"
    settings = settings.with_section(
        "servicenow",
        ServiceNowSettings(
            url=sn_sandbox.url,
            username=sn_sandbox.username,
            password=SecretStr(sn_sandbox.password),
            ca_file=sn_sandbox.ca_file,
        ),
    )
    host = await _install(settings)
    try:
        # Zendesk is not configured and not the desk: it is not installed at all.
        assert [s.name for s in host.systems if s.name in ("support", "servicenow")] == [
            "servicenow"
        ]
        (flow,) = host.flows
        assert isinstance(flow, QuoteToCash)
        assert flow._support is host.adapter("servicenow")
        assert await host.adapter("servicenow").health() is True
    finally:
        await host.adapter("servicenow").aclose()


async def test_the_chosen_desk_must_be_configured() -> None:
    settings = load_settings(env={"INTERLOCK_SUPPORT_DESK": "servicenow"})
    with pytest.raises(ConfigError) as info:
        await _install(settings)
    assert info.value.setting == "servicenow.url"
    with pytest.raises(ConfigError) as bad:
        load_settings(env={"INTERLOCK_SUPPORT_DESK": "freshdesk"})
    assert bad.value.setting == "support.desk"
