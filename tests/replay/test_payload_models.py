"""Corrections are validated against the payload models the installed flows declare
(``FlowSpec.payload_models`` merged by the host), not a list kept by replay."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, Field
from replay_support import failed_order, make_order, seed

from adapters.flows import SPEC
from collector import EmbeddedBus, FlowSpec, FlowStep, FlowSteps, Host, Settings
from collector.lineage import AsyncLineage
from replay import Corrections, ReplayService, Selection
from replay.plugin import ReplayPlugin
from tracing import Event, ValidationError


class Shipment(BaseModel):
    """A model replay has never heard of."""

    carrier: str = Field(min_length=1)
    weight_kg: Decimal = Field(gt=0)


#: A flow of its own, declaring a payload key no shipped flow has.
SHIPPING = FlowSpec(
    name="shipping",
    steps=FlowSteps(
        "shipping",
        "shipment.requested",
        (FlowStep("wms.shipment.create", timedelta(minutes=15), kind="shipment.created"),),
    ),
    trigger_kinds=frozenset({"shipment.requested"}),
    payload_models={"shipment": Shipment},
)


def _with_input_payload(pair: tuple[Event, Event], **payload: Any) -> tuple[Event, Event]:
    trigger, dead = pair
    return trigger.model_copy(update={"payload": {**trigger.payload, **payload}}), dead


async def _installed_replay(host: Host) -> ReplayService:
    """The replay plug-in as ``interlock up`` installs it: it reads the host."""
    await ReplayPlugin(auto_execute=False).install(host)
    service: ReplayService = host.shared("replay.service", _not_installed)
    await service.start()
    return service


def _not_installed() -> ReplayService:
    raise AssertionError("the replay plug-in did not share its service")


async def test_a_flow_declaring_a_new_payload_key_gets_its_corrections_validated(
    lineage: AsyncLineage, bus: EmbeddedBus
) -> None:
    settings = Settings.model_validate({"lineage": {"path": ":memory:"}})
    host = Host(settings, bus=bus, api_url="http://127.0.0.1:1", lineage=lineage)
    host.declare_flow(SPEC)
    service = await _installed_replay(host)
    # Declared after replay installed: the host's view is live, replay is not edited.
    host.declare_flow(SHIPPING)
    trigger, dead = _with_input_payload(
        failed_order(), shipment={"carrier": "DHL", "weight_kg": "2.5"}
    )
    await seed(lineage, (trigger, dead))
    selection = Selection(event_id=dead.event_id)
    try:
        with pytest.raises(ValidationError, match="not a valid Shipment") as info:
            await service.dry_run(
                selection, corrections=Corrections(patch={"shipment": {"weight_kg": "-1"}})
            )
        assert info.value.field == "shipment.weight_kg"
        with pytest.raises(ValidationError, match="not a valid Shipment"):
            await service.dry_run(
                selection, corrections=Corrections(patch={"shipment": {"carrier": ""}})
            )
        plan = await service.dry_run(
            selection, corrections=Corrections(patch={"shipment": {"weight_kg": "3"}})
        )
        assert plan.items[0].diff == [{"path": "shipment.weight_kg", "before": "2.5", "after": "3"}]
        # Quote-to-cash's own keys are still validated with its models.
        with pytest.raises(ValidationError, match="not a valid SalesOrder"):
            await service.dry_run(
                selection, corrections=Corrections(patch={"order": {"currency": "DOLLARS"}})
            )
    finally:
        await service.stop()


async def test_a_key_no_flow_declares_is_carried_unchecked(lineage, make_service) -> None:
    service = await make_service()  # quote-to-cash's models only: no "shipment"
    trigger, dead = _with_input_payload(failed_order(), shipment={"carrier": "DHL"})
    await seed(lineage, (trigger, dead))
    plan = await service.dry_run(
        Selection(event_id=dead.event_id),
        corrections=Corrections(patch={"shipment": {"weight_kg": "-1"}}),
    )
    assert plan.items[0].diff == [{"path": "shipment.weight_kg", "before": None, "after": "-1"}]


async def test_the_customer_order_created_carries_is_validated_as_a_customer(
    lineage, make_service
) -> None:
    # A dead erp.order.confirm: its input is order.created, whose payload is quote-to-
    # cash's own (ERP fields beside the customer and lines), not a sales order.
    order = make_order(sku="OLD-PRO")
    trigger, dead = failed_order(order, step="erp.order.confirm", kind="order.confirmed")
    trigger = trigger.model_copy(
        update={
            "kind": "order.created",
            "step": "erp.order.create",
            "payload": {
                "order_ref": order.order_ref,
                "erp_sale_id": 7,
                "erp_order_number": "SO0007",
                "erp_state": "draft",
                "customer": {"customer_id": order.customer.customer_id, "name": "Acme Corp"},
                "lines": [{"sku": "OLD-PRO", "quantity": "2", "unit_price": "199"}],
            },
        }
    )
    await seed(lineage, (trigger, dead))
    service = await make_service()
    selection = Selection(event_id=dead.event_id)
    with pytest.raises(ValidationError, match="not a valid Customer") as info:
        await service.dry_run(selection, corrections=Corrections(patch={"customer": {"name": ""}}))
    assert info.value.field == "customer.name"
    plan = await service.dry_run(
        selection, corrections=Corrections(sku_map={"OLD-PRO": "PLAT-PRO"})
    )
    assert plan.items[0].diff == [
        {"path": "lines[0].sku", "before": "OLD-PRO", "after": "PLAT-PRO"}
    ]
