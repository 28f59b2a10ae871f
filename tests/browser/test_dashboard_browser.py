"""The dashboard end to end in headless Chromium: the real runtime (Tryton, localstripe,
CRM and support sandboxes) with traffic, the real ``streamlit run`` child process, and
Playwright driving the browser. Signs in, opens a completed quote-to-cash transaction,
finds a dead-lettered order by its Salesforce opportunity ID, dry-runs its replay, and
screenshots every page: into ``$INTERLOCK_SCREENSHOTS`` when set (``make screenshots``
refreshes the README's pictures in ``docs/img/``), otherwise into a temporary folder, so a
test run never rewrites tracked files."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Locator, Page, async_playwright

from adapters.sandbox import free_port
from adapters.sandbox._landscape import Landscape
from adapters.sandbox._traffic import TrafficGenerator
from adapters.sandbox.plugin import with_landscape
from collector import Role, load_settings
from collector.host import Interlock
from tracing import correlation_id_for

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = Path("/usr/bin/chromium")
IMG = Path(
    os.environ.get("INTERLOCK_SCREENSHOTS") or Path(tempfile.gettempdir()) / "interlock-screenshots"
).resolve()
ADMIN_TOKEN = "browser-admin-token"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


#: The flagship path a completed won deal takes, in order (system, kind).
QUOTE_TO_CASH = ["opportunity.closed_won", "order.created", "order.confirmed",
                 "subscription.created", "entitlement.activated", "invoice.paid",
                 "invoice.posted"]  # fmt: skip


class Stack:
    def __init__(
        self, dashboard: str, dead_opportunity: str, good: list[str], completed: dict[str, Any]
    ) -> None:
        self.dashboard, self.dead_opportunity, self.good = dashboard, dead_opportunity, good
        self.completed = completed  # the detail of a completed quote-to-cash transaction


async def _wait_for(api: httpx.AsyncClient, opp: str, status: str) -> None:
    cid = correlation_id_for("crm", "opportunity", opp)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = await api.get(f"/api/v1/transactions/{cid}")
        if r.status_code == 200 and any(e["status"] == status for e in r.json()["events"]):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{opp} never had a {status} event")


async def _wait_completed(api: httpx.AsyncClient, opp: str) -> dict[str, Any]:
    """The transaction's detail once it is completed and every quote-to-cash step is in."""
    cid = correlation_id_for("crm", "opportunity", opp)
    deadline = time.monotonic() + 60
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await api.get(f"/api/v1/transactions/{cid}")
        if r.status_code == 200:
            detail = r.json()
            kinds = {e["kind"] for e in detail["events"]}
            if detail["state"] == "completed" and kinds >= set(QUOTE_TO_CASH):
                return detail
        await asyncio.sleep(0.25)
    raise AssertionError(f"{opp} never completed: {detail.get('state')} {detail.get('events')}")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    if not CHROMIUM.exists():  # noqa: ASYNC240  (one stat before anything starts)
        pytest.skip("Chromium is not installed (make test installs the Debian package)")
    workdir = tmp_path_factory.mktemp("browser")
    api_port = free_port()
    landscape = Landscape(workdir, webhook_url=f"http://127.0.0.1:{api_port}/webhooks/stripe")
    ep = await asyncio.to_thread(landscape.start)
    settings = with_landscape(
        load_settings(
            env={
                "INTERLOCK_LINEAGE_PATH": str(workdir / "lineage.duckdb"),
                "INTERLOCK_LINEAGE_FLUSH_INTERVAL": "0.05",
                "INTERLOCK_RETRY_MAX_ATTEMPTS": "3",
                "INTERLOCK_RETRY_BASE_DELAY": "0.05",
                "INTERLOCK_RETRY_MAX_DELAY": "0.2",
                "INTERLOCK_CRM_POLL_INTERVAL": "0.2",
                "INTERLOCK_DEMO_ENABLED": "false",
            }
        ),
        ep,
    )
    runtime = Interlock(settings, demo=False, api_port=api_port)
    traffic = TrafficGenerator(ep.crm_url, ep.crm_token, ca_file=ep.crm_ca_file, faults=False,
                               seed=11)  # fmt: skip
    try:
        info = await runtime.start()
        runtime.app.state.tokens.add("ada", Role.ADMIN, ADMIN_TOKEN)
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # reads need a token
        async with httpx.AsyncClient(base_url=info.api_url, timeout=10, headers=auth) as api:
            good = [await traffic.create_deal(close="won") for _ in range(3)]
            dead = await traffic.create_deal(malformed="unknown_product", close="won")
            for opp in good:
                await _wait_for(api, opp, "ok")
            await _wait_for(api, dead, "dead_lettered")
            completed = await _wait_completed(api, good[0])
            # One reconciliation run, for the Reconciliation page to show.
            started = await api.post("/api/v1/reconciliations", json={"period": "day"})
            assert started.status_code == 202, started.text
            for _ in range(120):
                run = (await api.get(f"/api/v1/reconciliations/{started.json()['run_id']}")).json()
                if run["status"] != "running":
                    break
                await asyncio.sleep(0.25)
        url = await asyncio.to_thread(runtime.start_dashboard, free_port())
        yield Stack(url, dead, good, completed)
    finally:
        await traffic.stop()
        await runtime.stop()
        await asyncio.to_thread(landscape.stop)


async def settle(page: Page, heading: str) -> float:
    """The page's heading is there and Streamlit has stopped running the script; the
    seconds that took (before the wait for charts to draw)."""
    started = time.perf_counter()
    await page.get_by_role("heading", name=heading).first.wait_for(timeout=30_000)
    await page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden", timeout=30_000)
    took = time.perf_counter() - started
    # Data frames and charts draw after the script ends: wait out their skeletons.
    for _ in range(40):
        if not await page.locator("[data-testid=stSkeleton]").count():
            break
        await page.wait_for_timeout(250)
    await page.wait_for_timeout(1000)
    return took


async def shoot(page: Page, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(IMG / f"{name}.png"))


async def shoot_down_to(page: Page, last: Locator, name: str) -> None:
    """Screenshot from the top of the page down to ``last`` with a viewport just tall
    enough (Streamlit scrolls inside its own container, so a full-page shot would not)."""
    box = await last.bounding_box()
    assert box is not None, f"{name}: nothing to frame"
    size = page.viewport_size or {"width": 1440, "height": 900}
    await page.set_viewport_size(
        {"width": size["width"], "height": max(size["height"], int(box["y"] + box["height"]) + 16)}
    )
    await settle_layout(page)
    await shoot(page, name)
    await page.set_viewport_size(size)


async def settle_layout(page: Page) -> None:
    """Charts redraw after a resize; give them a moment."""
    await page.wait_for_timeout(1500)


async def sign_in(page: Page, heading: str) -> None:
    """Sign in with the admin role token (a page load starts a new, signed-out session)."""
    sidebar = page.get_by_test_id("stSidebar")
    await sidebar.get_by_label("Role token", exact=True).fill(ADMIN_TOKEN)
    await sidebar.get_by_role("button", name="Sign in").click()
    await sidebar.get_by_text("Signed in as").wait_for(timeout=20_000)
    await settle(page, heading)


async def signed_in(page: Page) -> None:
    """The sidebar names the admin: this page load was signed in without typing a token."""
    await page.get_by_test_id("stSidebar").get_by_text("Signed in as").wait_for(timeout=20_000)
    assert await page.get_by_test_id("stSidebar").get_by_label("Role token").count() == 0


async def open_page(page: Page, title: str, heading: str) -> float:
    """Follow the sidebar navigation (keeps the signed-in session, unlike a reload); the
    seconds from the click until the page settled."""
    started = time.perf_counter()
    await page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    await settle(page, heading)
    return time.perf_counter() - started - 1.0  # settle's fixed 1 s pad is not the page's


async def test_sign_in_find_a_transaction_dry_run_and_screenshot_every_page(stack: Stack) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": 1440, "height": 900}, color_scheme="light"
            )
            page = await context.new_page()
            await page.goto(stack.dashboard)
            await settle(page, "Operations home")

            await sign_in(page, "Operations home")
            assert not await page.get_by_role("button", name="Deploy").count()
            await shoot(page, "home")

            # The sign-in survives a reload; the browser holds an opaque ID, not the token.
            await page.reload()
            await settle(page, "Operations home")
            await signed_in(page)
            cookies = {c["name"]: c["value"] for c in await context.cookies()}
            assert cookies.get("interlock_session")
            assert ADMIN_TOKEN not in str(cookies)

            # The flagship: a completed quote-to-cash transaction, linked by ?cid=; the same
            # browser stays signed in and the URL carries no token.
            cid = stack.completed["correlation_id"]
            await page.goto(f"{stack.dashboard}/Transactions?cid={cid}")
            await settle(page, "Transactions")
            await signed_in(page)
            assert ADMIN_TOKEN not in page.url
            await page.get_by_text("Path across the systems").wait_for(timeout=20_000)
            await settle(page, "Transactions")
            await shoot_down_to(page, page.get_by_text("One lane per system"), "transaction")

            # Find the dead-lettered order by its Salesforce opportunity ID.
            await open_page(page, "Transactions", "Transactions")
            search = page.get_by_role("textbox", name="Search", exact=True)
            await search.fill(stack.dead_opportunity)
            await search.press("Enter")
            await search.blur()  # a focused field is drawn with a red border
            await page.get_by_text("Dead letters of this transaction").wait_for(timeout=20_000)
            await settle(page, "Transactions")
            await page.get_by_text("Path across the systems").scroll_into_view_if_needed()
            await shoot(page, "transaction-dead-letter")
            await page.get_by_role("button", name="Dry-run a replay of this transaction").click()
            try:
                await page.get_by_text("Dry run:").wait_for(timeout=20_000)
            except Exception:
                await page.screenshot(path=str(IMG / "dry-run-failure.png"), full_page=True)
                raise
            await settle(page, "Transactions")
            assert "Nothing was sent." in await page.content()
            await shoot(page, "dry-run")

            timings: dict[str, float] = {}
            for title, heading, name in [
                ("Adapters", "Adapters", "adapters"),
                ("SLAs", "Business SLAs", "slas"),
                ("Alerts", "SLA alerts by business impact", "alerts"),
                ("Reports", "Executive SLA report", "reports"),
                ("Dead letters", "Dead letters", "dead-letters"),
                ("Replay", "Replay", "replay"),
                ("Approvals", "Approvals", "approvals"),
                ("Audit", "Audit trail", "audit"),
                ("Customers", "Customers", "customers"),
                ("Reconciliation", "Reconciliation", "reconciliation"),
            ]:
                timings[title] = await open_page(page, title, heading)
                await shoot(page, name)
            # The run the fixture started is listed with what it found: the dead-lettered
            # deal is a won deal no ERP, billing or support desk holds.
            assert await page.locator("[data-testid=stDataFrame]").count() == 2
            report = "\n".join(f"{t:<15} {s:5.2f} s" for t, s in timings.items())
            (IMG / "timings.txt").write_text(report + "\n", encoding="utf-8")
            print(f"page timings (click to settled):\n{report}")

            # The executive view, and the home in the dark theme.
            await page.goto(f"{stack.dashboard}/?view=executive")
            await settle(page, "Executive SLA report")
            await shoot(page, "executive")
            await signed_in(page)
            # The sidebar's view switch opens a new tab (a new session), still signed in.
            async with context.expect_page() as opened:
                await page.get_by_role("link", name="Switch to the operations view").click()
            ops = await opened.value
            await settle(ops, "Operations home")
            await signed_in(ops)
            await ops.close()

            # Signing out ends the kept sign-in: a reload asks for a token again.
            await page.get_by_role("button", name="Sign out").click()
            await page.get_by_label("Role token", exact=True).wait_for(timeout=20_000)
            await page.reload()  # still /?view=executive
            await settle(page, "Executive SLA report")
            await page.get_by_label("Role token", exact=True).wait_for(timeout=20_000)
            assert "interlock_session" not in {c["name"] for c in await context.cookies()}
            dark = await browser.new_context(
                viewport={"width": 1440, "height": 900}, color_scheme="dark"
            )
            night = await dark.new_page()
            await night.goto(stack.dashboard)
            await settle(night, "Operations home")
            await shoot(night, "home-dark")
        finally:
            await browser.close()
