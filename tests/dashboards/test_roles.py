"""Every page and action for every role, with AppTest, against the whole control API
(collector + SLA + replay + explore routers, role tokens) on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from stack_api import COMPLETED, DEAD, TOKENS, StackApi
from streamlit.testing.v1 import AppTest

from dashboards import _kept
from dashboards._kept import KeptSignIns, kept_sign_ins
from dashboards._nav import PageSpec, discover_pages
from dashboards._session import Principal, visible_pages

Opener = Callable[..., AppTest]
DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
ROLE_TOKENS = {"viewer": "tok-viewer", "operator": "tok-operator", "approver": "tok-approver",
               "admin": "tok-admin", "executive": "tok-exec"}  # fmt: skip


@pytest.fixture(scope="module")
def stack() -> Iterator[StackApi]:
    api = StackApi().start()
    yield api
    api.stop()


@pytest.fixture
def open_as(stack: StackApi, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """Run ``dashboards/<file>`` signed in as ``who`` (a key of ``ROLE_TOKENS``, or None)."""

    def run(file: str, who: str | None, **query: str) -> AppTest:
        monkeypatch.setenv("INTERLOCK_API_URL", stack.url)
        monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(DASHBOARDS / file), default_timeout=60)
        if who is not None:
            at.session_state["api_token"] = ROLE_TOKENS[who]
            at.session_state["view"] = "executive" if who == "executive" else "operations"
        for key, value in query.items():
            at.query_params[key] = value
        return at.run()

    return run


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.success]
    parts += [m.value for m in at.info] + [m.value for m in at.warning]
    parts += [m.value for m in at.error] + [m.value for m in at.caption]
    return "\n".join(str(p) for p in parts)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("who", list(ROLE_TOKENS))
@pytest.mark.parametrize("spec", discover_pages(), ids=lambda s: s.path.name)
def test_every_page_renders_for_every_role(spec: PageSpec, who: str, open_as: Opener) -> None:
    at = open_as(f"pages/{spec.path.name}", who)
    assert not at.exception, [e.value for e in at.exception]
    # A step's own error may be shown (the transaction page does); an API failure may not.
    assert not [e.value for e in at.error if "control API" in e.value or "(4" in e.value]


def test_navigation_follows_the_role_and_the_view() -> None:
    specs = discover_pages()

    def paths(role: str, view: str = "operations") -> list[str]:
        return [s.url_path for s in visible_pages(specs, Principal("x", role), view)]

    assert "Approvals" not in paths("viewer")
    assert "Approvals" not in paths("operator")
    assert "Approvals" in paths("approver") and "Approvals" in paths("admin")
    assert paths("viewer")[0] == "Overview"
    # The executive's home is the SLA report; the operations home is not in that view.
    assert paths("viewer", "executive") == ["Reports", "SLAs", "Alerts"]
    home = visible_pages(specs, Principal("x", "viewer"), "executive")[0]
    assert home.title == "Home: SLA report"
    # Down or refused: every page, each explains the problem itself.
    assert len(visible_pages(specs, None, "operations")) == len(specs)


def test_sign_in_checks_the_token_and_keeps_it_for_the_session(open_as: Opener) -> None:
    at = open_as("app.py", None)
    assert not at.exception
    # Reads need a token: signed out, the home page asks for one.
    assert "Sign in: the control API refuses reads without a known token." in texts(at)
    at.sidebar.text_input(key="signin_token").input("tok-operator")
    at.sidebar.button[0].click().run()
    assert not at.exception
    assert at.session_state["api_token"] == "tok-operator"
    assert at.session_state["signin_token"] == ""  # the typed secret is not kept in the widget
    assert at.session_state["signin_error"] == ""
    # (AppTest drops the sidebar tree after a form callback; a fresh run shows it.)
    signed_in = open_as("app.py", "operator")
    sidebar = "\n".join(m.value for m in signed_in.sidebar.markdown)
    assert "Signed in as **olga** · role **operator** · operations view" in sidebar
    signed_in.sidebar.button(key="sign_out").click().run()
    assert signed_in.session_state["api_token"] == ""


def _load(
    monkeypatch: pytest.MonkeyPatch, cookie: str | None, page: str | None = None, **query: str
) -> AppTest:
    """A new page load (a new Streamlit session) whose browser sends ``cookie``;
    ``page`` is the page the URL names (``Transactions`` for a ``?cid=`` link)."""
    monkeypatch.setattr(_kept, "browser_cookie", lambda: cookie)
    at = AppTest.from_file(str(DASHBOARDS / "app.py"), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page is not None:
        at.switch_page(f"pages/{next(s.path.name for s in discover_pages() if s.url_path == page)}")
        at.run()
    return at


def test_a_sign_in_survives_a_reload_and_a_deep_link_but_not_a_sign_out(
    open_as: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_as("app.py", None)
    at.sidebar.text_input(key="signin_token").input("tok-operator")
    at.sidebar.button[0].click().run()
    sid = at.session_state["kept_sid"]
    assert len(sid) >= 40 and "tok-operator" not in sid  # opaque and random
    assert kept_sign_ins().take(sid) is not None
    script = _kept.cookie_script(sid, _kept.MAX_SECONDS)
    assert "tok-operator" not in script and "SameSite=Lax" in script

    reloaded = _load(monkeypatch, sid)
    assert not reloaded.exception
    sidebar = "\n".join(m.value for m in reloaded.sidebar.markdown)
    assert "Signed in as **olga** · role **operator**" in sidebar
    assert "tok-operator" not in str(dict(reloaded.query_params))

    deep = _load(monkeypatch, sid, "Transactions", cid=DEAD)
    assert not deep.exception
    assert deep.session_state["api_token"] == "tok-operator"
    assert any(b.key == "tx_dry_run" for b in deep.button)  # an operator's action, shown
    assert DEAD in texts(deep)

    forged = _load(monkeypatch, "forged-" + sid[7:])
    assert "api_token" not in forged.session_state
    assert "Sign in: the control API refuses reads without a known token." in texts(forged)

    reloaded.sidebar.button(key="sign_out").click().run()
    assert kept_sign_ins().take(sid) is None  # the server-side entry is gone, not just the cookie
    after = _load(monkeypatch, sid)
    assert "api_token" not in after.session_state
    assert "Sign in: the control API refuses reads without a known token." in texts(after)


def test_a_kept_sign_in_whose_token_was_revoked_is_dropped(
    open_as: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_as("app.py", None)  # points the dashboard at the stack, fresh caches
    sid = kept_sign_ins().keep("tok-revoked", "operations")
    at = _load(monkeypatch, sid)
    assert not at.exception
    assert "api_token" not in at.session_state
    assert kept_sign_ins().take(sid) is None


def test_kept_sign_ins_expire_when_idle_and_at_their_end() -> None:
    now = [0.0]
    store = KeptSignIns(idle_seconds=60, max_seconds=150, clock=lambda: now[0])
    sid = store.keep("tok", "executive")
    now[0] = 59
    kept = store.take(sid)
    assert kept is not None and kept.view == "executive"  # use renews the idle deadline
    now[0] = 118
    assert store.take(sid) is not None
    now[0] = 150
    assert store.take(sid) is None  # the absolute end, however busy
    idle = store.keep("tok", "operations")
    now[0] = 211
    assert store.take(idle) is None and len(store) == 0


def test_an_unknown_token_is_refused_and_not_kept(open_as: Opener) -> None:
    at = open_as("app.py", None)
    at.sidebar.text_input(key="signin_token").input("not-a-token")
    at.sidebar.button[0].click().run()
    assert not at.exception
    assert at.session_state["signin_error"].startswith("Not signed in (401)")
    assert "api_token" not in at.session_state


def test_executive_view_opens_on_the_sla_report(open_as: Opener) -> None:
    at = open_as("app.py", "executive")
    assert not at.exception
    assert at.title[0].value == "Executive SLA report"
    assert "executive view" in "\n".join(m.value for m in at.sidebar.markdown)


def test_the_executive_home_is_the_sla_report_and_stays_it_after_a_reload(
    open_as: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_as("app.py", None)
    at.sidebar.text_input(key="signin_token").input("tok-exec")
    at.sidebar.radio(key="signin_view").set_value("executive")
    at.sidebar.button[0].click().run()
    sid = at.session_state["kept_sid"]
    home = _load(monkeypatch, sid)
    assert not home.exception
    assert home.title[0].value == "Executive SLA report"
    assert home.selectbox[0].label == "Period"
    report = home.dataframe[0].value
    assert {"Previous period", "Trend"} <= set(report.columns)
    assert "Top incidents by business impact" in [s.value for s in home.subheader]
    assert "Operations home" not in [t.value for t in home.title]
    assert "[Switch to the operations view](./?view=operations)" in texts(home)
    # A link naming the other view wins over the one signed in with.
    ops = _load(monkeypatch, sid, view="operations")
    assert ops.title[0].value == "Operations home"


def _main_area(at: AppTest) -> list[tuple[str, str]]:
    """What the page shows outside the sidebar: element types and their labels/headings."""
    shown = [("title", t.value) for t in at.main.title] + [("h", h.value) for h in at.main.header]
    shown += [("sub", h.value) for h in at.main.subheader]
    shown += [("metric", m.label) for m in at.main.metric]
    shown += [("button", b.label) for b in at.main.button]
    shown += [("table", ",".join(map(str, d.value.columns))) for d in at.main.dataframe]
    return shown


@pytest.mark.parametrize("spec", discover_pages(), ids=lambda s: s.path.name)
def test_a_viewer_who_signs_in_sees_what_a_visitor_sees(
    spec: PageSpec, open_as: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the demo: the dashboard reads with a viewer token of its own before sign-in."""
    at = open_as(f"pages/{spec.path.name}", "viewer")
    monkeypatch.setenv("INTERLOCK_API_TOKEN", "tok-exec")
    st.cache_data.clear()
    visitor = AppTest.from_file(str(DASHBOARDS / f"pages/{spec.path.name}"), default_timeout=60)
    visitor.run()
    assert not visitor.exception and not at.exception
    assert _main_area(visitor) == _main_area(at)


def test_operations_home_shows_slas_alerts_dead_letters_and_adapters(open_as: Opener) -> None:
    at = open_as("pages/01_Overview.py", "viewer")
    assert not at.exception
    shown = metrics(at)
    assert shown["Transactions"] == "7"
    assert shown["Dead letters open"] == "1"
    breached = next(v for k, v in shown.items() if k.endswith("Breached"))
    assert breached.endswith(("SLA", "SLAs"))
    frames = {next(iter(d.value.columns)): d.value for d in at.dataframe}
    assert "ERP API error rate" in list(frames["alert"]["alert"])
    assert list(frames["reason"]["reason"]) == ["downstream_unavailable"]
    adapters = frames["system"]
    assert list(adapters["system"]) == ["crm", "erp", "billing", "support"]
    assert list(adapters["429s"]) == [0, 0, 6, 0]
    for link in ("./SLAs", "./Alerts", "./Dead_letters", "./Adapters"):
        assert link in texts(at)


def test_adapters_page_shows_rates_errors_latency_and_derived_circuit(open_as: Opener) -> None:
    at = open_as("pages/03_Adapters.py", "viewer")
    assert not at.exception
    rows = {r["system"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows["billing"]["429s"] == 6
    assert rows["billing"]["wait after 429"] == "2.0 s"  # Retry-After honoured
    assert rows["billing"]["calls"] == 12
    assert rows["billing"]["error rate %"] == pytest.approx(50.0)
    assert rows["erp"]["circuit (derived)"] == "DEGRADED"
    assert rows["erp"]["failures in a row"] == 3
    assert rows["erp"]["open dead letters"] == 1
    assert rows["support"]["p95 ms"] == pytest.approx(120.0)
    assert "no circuit breaker" in texts(at)


@pytest.mark.parametrize("who", ["viewer", "operator"])
def test_transaction_explorer_finds_by_any_id_and_offers_a_dry_run_by_role(
    who: str, open_as: Opener
) -> None:
    at = open_as("pages/02_Transactions.py", who)
    at.text_input(key="tx_q").input("001D9").run()  # the account ID
    assert list(at.dataframe[0].value["transaction"]) == [f"./Transactions?cid={DEAD}"]
    assert "Dead letters of this transaction" in [s.value for s in at.subheader]
    assert at.get("graphviz_chart")
    if who == "viewer":
        assert not [b for b in at.button if b.key == "tx_dry_run"]
        assert "needs the operator role" in texts(at)
        return
    at.button(key="tx_dry_run").click().run()
    assert not at.exception
    assert "Dry run: 1 to re-deliver" in texts(at)
    assert "Nothing was sent." in texts(at)


def test_transaction_shows_milestones_retries_and_replays(open_as: Opener) -> None:
    at = open_as("pages/02_Transactions.py", "viewer", cid=COMPLETED[0])
    assert not at.exception
    milestones = next(d.value for d in at.dataframe if "milestone" in d.value.columns)
    assert list(milestones["milestone"]) == [
        "closed-won in CRM",
        "order in ERP",
        "subscription in billing",
        "invoice posted in ERP",
        "support case enriched",
    ]
    assert list(milestones["since previous"])[1:3] == ["600 ms", "2.4 s"]
    recovery = next(d.value for d in at.dataframe if "replay of" in d.value.columns)
    assert list(recovery["status"]) == ["retrying"]


@pytest.mark.parametrize("who", ["operator", "approver"])
def test_actions_follow_the_role_on_alerts(who: str, open_as: Opener) -> None:
    at = open_as("pages/21_Alerts.py", who)
    assert not at.exception
    assert at.button  # operator and above may acknowledge
    viewer = open_as("pages/21_Alerts.py", "viewer")
    assert not viewer.button


def test_tokens_cover_every_role() -> None:
    assert {role.name.lower() for _, role in TOKENS.values()} == {
        "viewer",
        "operator",
        "approver",
        "admin",
    }
