"""The dashboard and mission console in a real headless Chromium, against the real system.

Heartbeats are published on the bus the way agents publish them; every other
change (attention verdicts, events) comes from fleet-state and reaches the page
through the gateway's SSE stream. Waits are bounds on conditions, not timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from nats.aio.client import Client

from tests.e2e.conftest import ARTIFACTS, Stack
from vaultmesh.shared import subjects
from vaultmesh.shared.models.heartbeat import Heartbeat, NodeMetrics

# A heartbeat goes bus -> gateway -> SSE -> page: the page must show it within this bound.
LIVE_WAIT_MS = 2_000
# Anything that first passes through fleet-state (verdicts, stored events) gets longer.
STATE_WAIT_MS = 15_000
# Long intervals keep seeded nodes from going stale however slow the machine is.
INTERVAL_S = 600.0

browser = pytest.mark.browser


async def publish_heartbeat(
    nc: Client,
    node_id: UUID,
    hostname: str,
    *,
    services_ok: bool = True,
    cloudflare_ok: bool = True,
) -> None:
    """Publish one heartbeat as an agent does (JetStream, acknowledged)."""
    beat = Heartbeat(
        node_id=node_id,
        hostname=hostname,
        os_profile="ArchVault",
        cloudflare_ok=cloudflare_ok,
        services_ok=services_ok,
        vaultmesh_root="/var/lib/vaultmesh",
        timestamp=datetime.now(UTC),
        metrics=NodeMetrics(
            load1=0.42,
            load5=0.31,
            load15=0.2,
            mem_total_bytes=8 * 2**30,
            mem_available_bytes=3 * 2**30,
            disk_total_bytes=500 * 2**30,
            disk_free_bytes=120 * 2**30,
        ),
        interval_s=INTERVAL_S,
    )
    await nc.jetstream().publish(subjects.heartbeat(node_id), beat.model_dump_json().encode())


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def node_status(stack: Stack, node_id: UUID) -> str | None:
    """The node's status according to the JSON API, or None while unknown."""
    async with stack.admin_client() as client:
        reply = await client.get(f"/api/nodes/{node_id}")
    return str(reply.json()["status"]) if reply.status_code == 200 else None


async def seed(nc: Client, stack: Stack, hostname: str, expect: str, **checks: bool) -> UUID:
    """A node fleet-state knows, with the status ``expect``."""
    node_id = uuid4()
    await publish_heartbeat(nc, node_id, hostname, **checks)

    async def settled() -> bool:
        return await node_status(stack, node_id) == expect

    await eventually(settled, f"{hostname} to be {expect}")
    return node_id


async def counts(stack: Stack) -> dict[str, int]:
    """Fleet KPIs from the JSON API."""
    async with stack.admin_client() as client:
        reply = await client.get("/api/fleet/counts")
    reply.raise_for_status()
    return {key: int(value) for key, value in reply.json().items()}


async def open_live(context: Any, path: str) -> Any:
    """Open ``path`` and wait until its SSE stream is connected."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.script_errors = errors
    await page.goto(path)
    await page.wait_for_selector("body[data-sse='open']", timeout=STATE_WAIT_MS)
    return page


def node_selector(node_id: UUID, scope: str = "#node-list li") -> str:
    """The CSS selector of a node's entry."""
    return f"{scope}[data-node-id='{node_id}']"


async def kpi(page: Any, key: str) -> str:
    """A KPI as the mission bar shows it."""
    return str(await page.text_content(f".mission-bar [data-kpi='{key}']"))


# ---- without a browser ------------------------------------------------------------------


async def test_pages_and_assets_require_sign_in(stack: Stack) -> None:
    """No session: pages and assets redirect to /login instead of showing fleet data."""
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        for path in ("/", "/console", "/console?node=x", "/static/console.js"):
            reply = await client.get(path)
            assert reply.status_code == 303, path
            assert reply.headers["location"].startswith("/login"), path
        signed = await client.get(
            "/console", headers={"Authorization": f"Bearer {stack.admin_token}"}
        )
    assert signed.status_code == 200
    assert "script-src 'self'" in signed.headers["content-security-policy"]


# ---- in Chromium --------------------------------------------------------------------------


@browser
async def test_console_renders_fleet(nc: Client, stack: Stack, signed_in: Any) -> None:
    """Nodes published beforehand appear with their pills; KPIs match fleet-state."""
    ok_id = await seed(nc, stack, "render-ok.example", "OK")
    crit_id = await seed(nc, stack, "render-crit.example", "CRIT", services_ok=False)
    expected = await counts(stack)
    page = await open_live(signed_in, f"/console?node={crit_id}")

    assert await page.text_content(node_selector(ok_id) + " .pill") == "OK"
    assert await page.text_content(node_selector(crit_id) + " .pill") == "CRIT"
    for key in ("total", "healthy", "attention", "critical"):
        assert await kpi(page, key) == str(expected[key]), key
    assert await page.text_content("#telemetry [data-field='hostname']") == "render-crit.example"
    assert await page.text_content("#telemetry [data-field='services_ok']") == "✗ failing"
    assert "5.0 GiB of 8.0 GiB used" in str(await page.text_content("#telemetry"))
    assert await page.is_visible(node_selector(crit_id, "#attention-list li"))
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console.png"))
    assert page.script_errors == []


@browser
async def test_new_node_heartbeat_shows_up_live(nc: Client, stack: Stack, signed_in: Any) -> None:
    """A heartbeat from a node never seen before appears on the open console, no reload."""
    page = await open_live(signed_in, "/console")
    total_before = int(await kpi(page, "total"))
    node_id = uuid4()
    await publish_heartbeat(nc, node_id, "live-new.example")

    item = await page.wait_for_selector(node_selector(node_id), timeout=LIVE_WAIT_MS)
    assert await item.text_content() is not None
    assert "live-new.example" in str(await item.text_content())
    assert await item.get_attribute("data-last-beat") is not None  # the heartbeat glow fired
    assert await kpi(page, "total") == str(total_before + 1)
    # fleet-state then judges it OK (its join event, sent once for every new node, says so).
    await page.wait_for_selector(
        node_selector(node_id) + "[data-status='OK']", timeout=STATE_WAIT_MS
    )
    assert page.script_errors == []


@browser
async def test_dashboard_updates_live(nc: Client, stack: Stack, signed_in: Any) -> None:
    """The dashboard table gains a row for a new node from the stream."""
    page = await open_live(signed_in, "/")
    node_id = uuid4()
    await publish_heartbeat(nc, node_id, "dash-live.example", cloudflare_ok=False)

    row = node_selector(node_id, "#fleet-rows tr")
    await page.wait_for_selector(row, timeout=LIVE_WAIT_MS)
    assert await page.text_content(row + " [data-field='hostname']") == "dash-live.example"
    assert await page.text_content(row + " [data-field='cloudflare_ok']") == "✗ failing"
    await page.wait_for_selector(row + "[data-status='ATTN']", timeout=STATE_WAIT_MS)
    assert page.script_errors == []


@browser
async def test_attention_change_updates_pill(nc: Client, stack: Stack, signed_in: Any) -> None:
    """A node turning critical changes its pill, the KPIs and the attention summary."""
    node_id = await seed(nc, stack, "turns-crit.example", "OK")
    page = await open_live(signed_in, f"/console?node={node_id}")
    assert await page.text_content(node_selector(node_id) + " .pill") == "OK"
    critical_before = int(await kpi(page, "critical"))

    await publish_heartbeat(nc, node_id, "turns-crit.example", services_ok=False)

    pill = node_selector(node_id) + "[data-status='CRIT'] .pill"
    await page.wait_for_selector(pill, timeout=STATE_WAIT_MS)
    assert await page.text_content(pill) == "CRIT"
    assert await kpi(page, "critical") == str(critical_before + 1)
    assert await page.text_content("#telemetry [data-field='status']") == "CRIT"
    await page.wait_for_selector(node_selector(node_id, "#attention-list li"), timeout=1000)
    change = "#event-feed li[data-kind='attention']:has-text('turns-crit.example')"
    assert "OK → CRIT" in str(await page.text_content(change))
    assert page.script_errors == []


@browser
async def test_posted_note_reaches_other_consoles(nc: Client, stack: Stack, signed_in: Any) -> None:
    """A note posted from one console appears, via SSE, in the feed of another."""
    node_id = await seed(nc, stack, "noted.example", "OK")
    watcher = await open_live(signed_in, f"/console?node={node_id}")
    poster = await open_live(signed_in, f"/console?node={node_id}")
    text = f"checked the tunnel {uuid4()}"

    await poster.fill("#event-form [name='author']", "alice")
    await poster.fill("#event-form [name='body']", text)
    await poster.click("#event-form button[type='submit']")

    item = f"#event-feed li[data-kind='note']:has-text('{text}')"
    await watcher.wait_for_selector(item, timeout=STATE_WAIT_MS)
    assert await watcher.text_content(item + " [data-field='author']") == "alice"
    assert await watcher.text_content(item + " [data-field='node']") == "noted.example"
    await watcher.wait_for_selector(f"#timeline li:has-text('{text}')", timeout=1000)
    assert "posted note" in str(await poster.text_content("#form-status"))
    async with stack.admin_client() as client:
        stored = (await client.get("/api/events", params={"node_id": str(node_id)})).json()
    assert any(e["body"] == text and e["author"] == "alice" for e in stored["events"])
    assert watcher.script_errors == []
    assert poster.script_errors == []


@browser
async def test_dashboard_readable_without_javascript(
    nc: Client, stack: Stack, browser: Any
) -> None:
    """With JavaScript off the dashboard still shows the fleet table, server-rendered."""
    node_id = await seed(nc, stack, "nojs.example", "ATTN", cloudflare_ok=False)
    context = await browser.new_context(base_url=stack.base_url, java_script_enabled=False)
    try:
        await context.request.post("/login", form={"token": stack.admin_token})
        page = await context.new_page()
        await page.goto("/")
        row = node_selector(node_id, "#fleet-rows tr")
        assert await page.text_content(row + " [data-field='hostname']") == "nojs.example"
        assert await page.text_content(row + " .pill") == "ATTN"
        assert await page.text_content(row + " [data-field='cloudflare_ok']") == "✗ failing"
        assert await page.text_content(row + " [data-field='services_ok']") == "✓ ok"
        seen = await page.get_attribute(row + " time", "title")
        assert seen is not None
        assert datetime.fromisoformat(seen).tzinfo is not None  # the exact RFC 3339 time
        assert await page.text_content("body[data-sse='off'] #link-state") == "snapshot"
    finally:
        await context.close()


@browser
async def test_console_posts_an_event_without_javascript(
    nc: Client, stack: Stack, browser: Any
) -> None:
    """With JavaScript off the console's form still posts, and the page shows the event."""
    node_id = await seed(nc, stack, "nojs-post.example", "OK")
    text = f"posted without scripts {uuid4()}"
    context = await browser.new_context(base_url=stack.base_url, java_script_enabled=False)
    try:
        await context.request.post("/login", form={"token": stack.admin_token})
        page = await context.new_page()
        await page.goto(f"/console?node={node_id}")
        await page.fill("#event-form [name='author']", "bob")
        await page.fill("#event-form [name='body']", text)
        await page.select_option("#event-form [name='kind']", "ack")
        async with page.expect_navigation():
            await page.click("#event-form button[type='submit']")
        assert page.url.endswith(f"/console?node={node_id}")

        async def shown() -> bool:
            await page.reload()
            return await page.locator(f"#timeline li:has-text('{text}')").count() == 1

        for _ in range(40):  # fleet-state lists the event once it has read it from EVENTS
            if await shown():
                break
            await asyncio.sleep(0.1)
        assert await page.locator(f"#timeline li:has-text('{text}')").count() == 1
    finally:
        await context.close()


@browser
async def test_hostile_hostname_is_shown_as_text(nc: Client, stack: Stack, signed_in: Any) -> None:
    """Markup in a hostname is displayed literally, server-rendered and live."""
    hostile = '<img src=x onerror="window.__pwned=1">'
    rendered_id = await seed(nc, stack, hostile, "OK")
    page = await open_live(signed_in, f"/console?node={rendered_id}")
    live_id = uuid4()
    await publish_heartbeat(nc, live_id, hostile + "-live")
    await page.wait_for_selector(node_selector(live_id), timeout=LIVE_WAIT_MS)

    for node_id, name in ((rendered_id, hostile), (live_id, hostile + "-live")):
        entry = node_selector(node_id)
        assert await page.text_content(entry + " [data-field='hostname']") == name
        assert await page.query_selector(entry + " img") is None
    assert await page.evaluate("window.__pwned") is None
    dashboard = await open_live(signed_in, "/")
    assert await dashboard.query_selector("#fleet-rows img") is None
    assert await dashboard.evaluate("window.__pwned") is None
