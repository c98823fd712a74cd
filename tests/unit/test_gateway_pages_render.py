"""Server-side rendering of the dashboard and console: escaping, pills, times (no I/O)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from vaultmesh.services.gateway.pages.assets import load_assets
from vaultmesh.services.gateway.pages.console import ConsoleData, console_page
from vaultmesh.services.gateway.pages.dashboard import dashboard_page
from vaultmesh.services.gateway.pages.feed import event_summary
from vaultmesh.services.gateway.pages.html import Html, esc, render, script_json, tag
from vaultmesh.services.gateway.pages.widgets import age_text, fmt_bytes, pill
from vaultmesh.shared.models.events import EventEnvelope, EventKind
from vaultmesh.shared.models.fleet import FleetCounts, NodeStatus, NodeView

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>&\'"'


def node(hostname: str = "vault-01", status: NodeStatus = NodeStatus.OK, **kw: object) -> NodeView:
    fields: dict[str, object] = {
        "node_id": uuid4(),
        "hostname": hostname,
        "os_profile": "ArchVault",
        "cloudflare_ok": True,
        "services_ok": True,
        "vaultmesh_root": "/var/lib/vaultmesh",
        "last_heartbeat": NOW - timedelta(seconds=12),
        "last_seen": NOW - timedelta(seconds=12),
        "first_seen": NOW - timedelta(hours=2),
        "interval_s": 30.0,
        "status": status,
    }
    fields.update(kw)
    return NodeView.model_validate(fields)


COUNTS = FleetCounts(total=1, healthy=1, attention=0, critical=0)


def console(nodes: list[NodeView], feed: list[EventEnvelope] | None = None) -> str:
    data = ConsoleData(nodes, COUNTS, feed or [], [], [], nodes[0] if nodes else None, NOW)
    return console_page(data)


def test_esc_escapes_markup_and_quotes() -> None:
    assert esc(HOSTILE) == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;&quot;"


def test_html_passes_through_and_tag_escapes_attributes() -> None:
    assert esc(Html("<b>")) == "<b>"
    assert tag("a", "<i>", href='"><x', data_node_id="1") == (
        '<a href="&quot;&gt;&lt;x" data-node-id="1">&lt;i&gt;</a>'
    )


def test_render_escapes_plain_values_and_rejects_missing_ones() -> None:
    out = render("layout.html", title=HOSTILE, page="p", script="s.js", body=Html("<main>"))
    assert "<script>alert" not in out
    assert "<main>" in out
    with pytest.raises(KeyError):
        render("layout.html", title="t")


def test_script_json_cannot_close_its_script_element() -> None:
    out = script_json({"h": "</script><script>alert(1)</script>&"})
    assert "<" not in out
    assert "&" not in out
    assert json.loads(out) == {"h": "</script><script>alert(1)</script>&"}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "just now"),
        (-3, "just now"),
        (12, "12 s ago"),
        (150, "2 min ago"),
        (7300, "2 h ago"),
        (3 * 86400, "3 d ago"),
    ],
)
def test_age_text(seconds: float, text: str) -> None:
    assert age_text(seconds) == text


def test_fmt_bytes() -> None:
    assert fmt_bytes(None) == "—"
    assert fmt_bytes(512) == "512 B"
    assert fmt_bytes(3 * 2**30 + 2**29) == "3.5 GiB"


def test_pills_carry_status_text_not_only_colour() -> None:
    assert ">CRIT<" in pill(NodeStatus.CRIT)
    assert "pill-crit" in pill(NodeStatus.CRIT)
    assert "pill-pending" in pill(None)


def test_dashboard_escapes_hostnames_and_shows_exact_times() -> None:
    bad = node(HOSTILE, NodeStatus.CRIT, services_ok=False)
    out = dashboard_page([bad], COUNTS, [], NOW)
    assert "<script>alert" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)" in out
    assert 'title="2026-03-01T11:59:48Z"' in out
    assert ">12 s ago<" in out
    assert "✗ failing" in out
    assert f'data-node-id="{bad.node_id}"' in out


def test_dashboard_hides_the_empty_note_only_when_there_are_nodes() -> None:
    assert re.search(r'id="fleet-empty" hidden', dashboard_page([node()], COUNTS, [], NOW))
    assert re.search(r'id="fleet-empty">', dashboard_page([], COUNTS, [], NOW))


def test_console_escapes_everything_attacker_controlled() -> None:
    bad = node(HOSTILE, NodeStatus.ATTN, reasons=[HOSTILE], os_profile=HOSTILE)
    note = EventEnvelope.create(
        kind=EventKind.NOTE, author=HOSTILE, node_id=bad.node_id, body=HOSTILE, ts=NOW
    )
    out = console([bad], [note])
    assert "<script>alert" not in out
    # Only our own script elements: the two external scripts and the JSON state block.
    assert out.count("<script") == 3
    state = re.search(r'<script type="application/json" id="vm-state">(.*?)</script>', out, re.S)
    assert state is not None
    assert json.loads(state.group(1))["nodes"][0]["hostname"] == HOSTILE


def test_console_selects_first_node_and_lists_troubled_ones() -> None:
    ok, crit = node("a-ok"), node("b-crit", NodeStatus.CRIT, reasons=["stale"])
    out = console([ok, crit])
    assert f'href="/console?node={ok.node_id}" aria-current="true"' in out
    attention = out.split('id="attention-list"', 1)[1].split("</ul>", 1)[0]
    assert "b-crit" in attention
    assert "a-ok" not in attention


def test_attention_summary_reads_like_a_transition() -> None:
    event = EventEnvelope.create(
        kind=EventKind.ATTENTION,
        author="fleet-state",
        node_id=UUID(int=1),
        data={"status": "CRIT", "previous": "OK", "reasons": ["stale", "services"]},
    )
    assert event_summary(event) == "OK → CRIT · stale; services"


def test_every_static_asset_is_served_with_its_type() -> None:
    assets = load_assets()
    assert {"app.css", "vm.js", "dashboard.js", "console.js", "favicon.svg"} <= set(assets)
    assert assets["console.js"].media_type.startswith("text/javascript")
    # No framework, no CDN: nothing refers to another origin.
    for name in ("app.css", "vm.js", "dashboard.js", "console.js"):
        assert b"http://" not in assets[name].body, name
        assert b"https://" not in assets[name].body, name
