"""The plug-in host: one builder, plug-ins found by entry point, order from stages,
facts declared once and read everywhere, and the room boundaries that keep it so."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from _hosts import SYSTEMS, serve
from pydantic import BaseModel

from adapters.flows import SPEC
from collector import (
    ENTRY_POINT_GROUP,
    EmbeddedBus,
    FlowSpec,
    FlowStep,
    FlowSteps,
    Host,
    PayloadModelConflict,
    Role,
    Settings,
    Stage,
    SystemInfo,
    component,
    discover,
    ordered,
)
from sla_rules import Rule, RuleFileError, load_rules
from sla_rules._check import check_rules, rule_steps
from tracing import ConfigError, ErrorInfo, Event, Reason, Status, System

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("adapters", "tracing", "collector", "sla_rules", "replay", "dashboards")
TOKENS = {"tok-viewer": ("vic", Role.VIEWER), "tok-operator": ("olga", Role.OPERATOR)}


# -- the room boundaries ----------------------------------------------------------------


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_the_package_root_is_light() -> None:
    code = (
        "import sys, collector; "
        "print(sorted({'fastapi', 'duckdb', 'pyarrow', 'uvicorn', 'aiokafka'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_room_imports_a_private_collector_module_and_collector_imports_no_room() -> None:
    private: list[str] = []
    upward: list[str] = []
    for room in (*ROOMS, "bench"):
        for path in (ROOT / room).rglob("*.py"):
            for name in _imports(path):
                where = f"{path.relative_to(ROOT)}: {name}"
                if room != "collector" and name.startswith("collector._"):
                    private.append(where)
                if room == "collector" and name.split(".")[0] in {
                    "adapters", "replay", "sla_rules", "dashboards"
                }:  # fmt: skip
                    upward.append(where)
    assert private == []
    assert upward == []


def test_no_room_imports_another_rooms_private_modules() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for room in (*ROOMS, "bench")
        for path in (ROOT / room).rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in ROOMS
        and name.split(".")[0] != room
        and any(part.startswith("_") for part in name.split(".")[1:2])
    ]
    assert found == []


def test_production_code_never_imports_the_sandboxes() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for room in ("collector", "replay", "sla_rules", "dashboards", "tracing")
        for path in (ROOT / room).rglob("*.py")
        for name in _imports(path)
        if name.startswith("adapters.sandbox")
    ]
    assert found == []


# -- plug-ins ----------------------------------------------------------------------------


def test_interlock_up_finds_the_shipped_plugins_by_entry_point() -> None:
    names = [p.name for p in discover(ENTRY_POINT_GROUP)]
    assert set(names) == {
        "demo", "crm", "erp", "billing", "support", "servicenow", "quote_to_cash", "replay",
        "sla", "reconcile", "statements", "catalog", "customers",
    }  # fmt: skip
    assert names[0] == "demo"
    assert names.index("quote_to_cash") > max(
        names.index(s) for s in ("crm", "erp", "billing", "support", "servicenow")
    )
    # The catalog's pre-validation is in place before quote-to-cash builds its flow.
    assert names.index("quote_to_cash") > names.index("catalog") > names.index("erp")
    assert names.index("replay") > names.index("quote_to_cash")
    assert names.index("sla") > names.index("replay")
    assert names.index("reconcile") > names.index("replay")
    assert names.index("statements") > names.index("quote_to_cash")
    assert names.index("customers") > names.index("replay")


class _P:
    sections: Mapping[str, type[BaseModel]] = {}

    def __init__(self, name: str, *after: str) -> None:
        self.name, self.after = name, after

    async def install(self, host: Host) -> None:
        return None


def test_plugin_order_is_soft_but_refuses_cycles_and_twins() -> None:
    assert [p.name for p in ordered([_P("b", "a", "missing"), _P("a")])] == ["a", "b"]
    with pytest.raises(ConfigError, match="cycle"):
        ordered([_P("a", "b"), _P("b", "a")])
    with pytest.raises(ConfigError, match="twice"):
        ordered([_P("a"), _P("a")])


# -- the host's lifecycle -----------------------------------------------------------------


async def test_the_host_starts_by_stage_and_stops_in_reverse() -> None:
    host = Host(Settings(), bus=EmbeddedBus(), api_url="http://127.0.0.1:1")
    seen: list[str] = []

    def part(name: str, *, fail_stop: bool = False) -> object:
        async def start() -> None:
            seen.append(f"start {name}")

        async def stop() -> None:
            seen.append(f"stop {name}")
            if fail_stop:
                raise RuntimeError("stuck")

        return component(name, start=start, stop=stop)

    host.add_component(part("traffic"), Stage.TRAFFIC)  # type: ignore[arg-type]
    host.add_component(part("api", fail_stop=True), Stage.API)  # type: ignore[arg-type]
    host.add_component(part("replay"), Stage.SUBSCRIBE, stop_stage=Stage.SERVICE)  # type: ignore[arg-type]
    host.add_component(part("bus"), Stage.BUS)  # type: ignore[arg-type]
    await host.start()
    await host.stop()
    assert seen == [
        "start replay", "start bus", "start api", "start traffic",
        # the API fails to stop; the rest still stop, replay while the bus runs
        "stop traffic", "stop api", "stop replay", "stop bus",
    ]  # fmt: skip


def test_systems_are_declared_once_in_lane_order() -> None:
    host = Host(Settings(), bus=EmbeddedBus(), api_url="http://127.0.0.1:1")
    for info in reversed(SYSTEMS[1:]):
        host.add_system(info)
    assert [s.name for s in host.systems] == ["crm", "interlock", "erp", "billing", "support"]
    with pytest.raises(ConfigError, match="twice"):
        host.add_system(SystemInfo("erp", "ERP"))
    with pytest.raises(ConfigError, match="no adapter"):
        host.adapter("erp")


# -- payload models ------------------------------------------------------------------------


class _Shipment(BaseModel):
    carrier: str


class _OtherOrder(BaseModel):
    ref: str


def _flow(name: str, **payload_models: type[BaseModel]) -> FlowSpec:
    steps = FlowSteps(name, f"{name}.started", (FlowStep(f"{name}.do", timedelta(minutes=5)),))
    return FlowSpec(
        name=name,
        steps=steps,
        trigger_kinds=frozenset({f"{name}.started"}),
        payload_models=payload_models,
    )


def test_the_flows_payload_models_merge_and_a_key_has_one_model() -> None:
    host = Host(Settings(), bus=EmbeddedBus(), api_url="http://127.0.0.1:1")
    models = host.payload_models  # a live view: flows declared later add theirs
    host.declare_flow(SPEC)
    host.declare_flow(_flow("shipping", shipment=_Shipment, order=SPEC.payload_models["order"]))
    assert dict(models) == {**SPEC.payload_models, "shipment": _Shipment}
    with pytest.raises(PayloadModelConflict) as info:
        host.declare_flow(_flow("resale", order=_OtherOrder, extra=_Shipment))
    conflict = info.value
    assert isinstance(conflict, ConfigError)
    assert (conflict.key, conflict.first_flow, conflict.second_flow) == (
        "order", "quote-to-cash", "resale"
    )  # fmt: skip
    message = str(conflict)
    assert "'order'" in message and "quote-to-cash" in message and "resale" in message
    assert "SalesOrder" in message and "_OtherOrder" in message
    # The refused flow is not half installed.
    assert [s.name for s in host.flow_specs] == ["quote-to-cash", "shipping"]
    assert "extra" not in models
    with pytest.raises(TypeError):
        models["x"] = _Shipment  # type: ignore[index]


# -- rules against the flows ----------------------------------------------------------------


def _rule(indicator: dict[str, object]) -> Rule:
    return Rule.model_validate(
        {
            "id": "typo-rule",
            "name": "Typo",
            "objective": 0.99,
            "impact_tier": "revenue",
            "indicator": indicator,
            "source": "mine.yaml",
        }
    )


def test_a_rule_naming_an_unknown_step_or_kind_fails_with_the_rule_and_the_name() -> None:
    check_rules(load_rules(), [SPEC], systems=[s.name for s in SYSTEMS])  # the shipped rules pass
    with pytest.raises(RuleFileError) as info:
        check_rules([_rule({"kind": "success_ratio", "step": "erp.invoice.psot"})], [SPEC])
    assert info.value.rule == "typo-rule" and "erp.invoice.psot" in str(info.value)
    with pytest.raises(RuleFileError, match=r"order\.craeted"):
        check_rules(
            [
                _rule(
                    {
                        "kind": "latency",
                        "start": {"kind": "opportunity.closed_won"},
                        "end": {"kind": "order.craeted"},
                        "threshold": "5m",
                    }
                )
            ],
            [SPEC],
        )
    with pytest.raises(RuleFileError, match="servicenow"):
        check_rules(
            [_rule({"kind": "api_error_rate", "system": "servicenow"})], [SPEC], systems=["erp"]
        )


def test_each_rule_knows_the_steps_it_measures() -> None:
    by_id = {r.id: r for r in load_rules()}
    assert rule_steps(by_id["invoice-sync-success"], [SPEC]) == {"erp.invoice.post"}
    assert rule_steps(by_id["closed-won-to-erp-order"], [SPEC]) == {"erp.order.create"}


# -- the wiring the hand compositions lost ---------------------------------------------------


def _dead_letter(cid: str, step: str, kind: str, target: System) -> Event:
    at = datetime.now(UTC) - timedelta(minutes=5)
    return Event(
        event_id=f"{cid}-dl",
        correlation_id=cid,
        idempotency_key=f"{step}:{cid}",
        source=System.INTERLOCK,
        target=target,
        kind=kind,
        step=step,
        entity_type="sales_order",
        entity_id=cid,
        status=Status.DEAD_LETTERED,
        amount=Decimal("1200.00"),
        currency="USD",
        event_time=at,
        error=ErrorInfo(reason=Reason.DOWNSTREAM_UNAVAILABLE, message="503", retriable=True),
    )


def test_replay_selects_dead_letters_by_sla_rule_and_reads_need_a_token(tmp_path: Path) -> None:
    events = [
        _dead_letter("c-order", "erp.order.create", "order.created", System.ERP),
        _dead_letter("c-invoice", "erp.invoice.post", "invoice.posted", System.ERP),
    ]
    running = serve(events, TOKENS, workdir=tmp_path)
    try:
        auth = {"Authorization": "Bearer tok-viewer"}
        with httpx.Client(base_url=running.url, timeout=10) as api:
            assert api.get("/api/v1/dead-letters").status_code == 401
            answer = api.get(
                "/api/v1/dead-letters",
                params={"sla_rule": "closed-won-to-erp-order"},
                headers=auth,
            )
            assert answer.status_code == 200, answer.text
            assert [d["correlation_id"] for d in answer.json()["items"]] == ["c-order"]
            unknown = api.get("/api/v1/dead-letters", params={"sla_rule": "nope"}, headers=auth)
            assert unknown.status_code == 422
            systems = api.get("/api/v1/systems", headers=auth).json()["systems"]
            assert [s["name"] for s in systems] == ["crm", "interlock", "erp", "billing", "support"]
            adapters = api.get("/api/v1/adapters", headers=auth).json()["systems"]
            assert [a["system"] for a in adapters] == ["crm", "erp", "billing", "support"]
    finally:
        running.stop()


async def test_a_flow_ships_its_rules_in_its_own_room_and_they_are_checked(tmp_path: Path) -> None:
    from dataclasses import replace

    from sla_rules.plugin import SlaPlugin

    rules = tmp_path / "own.yaml"
    rules.write_text(
        "version: 1\nservice: quote-to-cash\nslos:\n"
        "  - id: own-invoice-rule\n    name: Own\n    objective: 99%\n"
        "    impact_tier: cash_collection\n"
        "    indicator: {kind: success_ratio, step: erp.invoice.post}\n"
    )
    host = Host(Settings(), bus=EmbeddedBus(), api_url="http://127.0.0.1:1")
    for info in SYSTEMS[1:]:
        host.add_system(info)
    host.declare_flow(replace(SPEC, rule_files=(rules,)))
    await SlaPlugin().install(host)
    assert host.rule_steps["own-invoice-rule"] == {"erp.invoice.post"}
    assert "invoice-sync-success" in host.rule_steps  # the shipped rules still load

    rules.write_text(rules.read_text().replace("erp.invoice.post", "erp.invoice.psot"))
    again = Host(Settings(), bus=EmbeddedBus(), api_url="http://127.0.0.1:1")
    for info in SYSTEMS[1:]:
        again.add_system(info)
    again.declare_flow(replace(SPEC, rule_files=(rules,)))
    with pytest.raises(RuleFileError, match=r"erp\.invoice\.psot"):
        await SlaPlugin().install(again)
