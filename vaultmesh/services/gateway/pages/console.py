"""The mission console (``GET /console``): nodes, selected-node telemetry, fleet summary.

The first paint is server-rendered (selection by ``?node=``, so it works without
JavaScript); ``static/console.js`` then keeps every panel current from the SSE
stream, using the ``<template>`` elements rendered here for new items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from vaultmesh.services.gateway.pages.dashboard import HIDDEN, NOTHING, sorted_nodes
from vaultmesh.services.gateway.pages.feed import event_item, event_items
from vaultmesh.services.gateway.pages.html import Html, join, render, script_json, tag
from vaultmesh.services.gateway.pages.widgets import check, fmt_bytes, kpis, pill, time_ago
from vaultmesh.shared.clock import rfc3339
from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.models.fleet import FleetCounts, NodeStatus, NodeView
from vaultmesh.shared.models.heartbeat import NodeMetrics


@dataclass(frozen=True)
class ConsoleData:
    """Everything the first paint of the console shows."""

    nodes: Sequence[NodeView]
    counts: FleetCounts
    feed: Sequence[EventEnvelope]
    scans: Sequence[EventEnvelope]
    timeline: Sequence[EventEnvelope]
    selected: NodeView | None
    now: datetime


def node_item(node: NodeView, now: datetime, selected: bool) -> Html:
    """One entry of the left-hand node list."""
    node_id = str(node.node_id)
    link = tag(
        "a",
        join(
            [
                pill(node.status),
                tag("span", node.hostname, class_="node-host", data_field="hostname"),
                tag("span", node.os_profile, class_="node-os", data_field="os_profile"),
                time_ago(node.last_seen, now, field="last_seen"),
            ]
        ),
        href=f"/console?node={node_id}",
        aria_current="true" if selected else None,
    )
    return tag("li", link, class_="node-item", data_node_id=node_id, data_status=node.status)


def blank_node_item() -> Html:
    """The node-list entry the script clones for a node that appears later."""
    link = tag(
        "a",
        join(
            [
                pill(None),
                tag("span", "", class_="node-host", data_field="hostname"),
                tag("span", "", class_="node-os", data_field="os_profile"),
                tag("time", "", data_relative="", data_field="last_seen"),
            ]
        ),
        href="#",
    )
    return tag("li", link, class_="node-item", data_node_id="", data_status="")


def attention_item(node: NodeView | None) -> Html:
    """A node that is not OK, with the attention model's reasons."""
    node_id = "" if node is None else str(node.node_id)
    parts = [
        pill(None if node is None else node.status),
        tag(
            "a",
            "" if node is None else node.hostname,
            href=f"/console?node={node_id}" if node_id else "#",
            data_field="hostname",
        ),
        tag("span", "" if node is None else "; ".join(node.reasons), class_="reasons-text"),
    ]
    return tag("li", join(parts), class_="attention-item", data_node_id=node_id)


def _ratio(used: int | None, total: int | None) -> tuple[str, str]:
    if used is None or not total:
        return "0", "—"
    return f"{used / total:.3f}", f"{fmt_bytes(used)} of {fmt_bytes(total)} used"


def _metric_values(metrics: NodeMetrics | None) -> dict[str, str]:
    m = metrics or NodeMetrics()
    loads = (m.load1, m.load5, m.load15)
    load = " / ".join("—" if v is None else f"{v:.2f}" for v in loads)
    mem_used = None
    if m.mem_total_bytes is not None and m.mem_available_bytes is not None:
        mem_used = m.mem_total_bytes - m.mem_available_bytes
    disk_used = None
    if m.disk_total_bytes is not None and m.disk_free_bytes is not None:
        disk_used = m.disk_total_bytes - m.disk_free_bytes
    mem_ratio, mem_text = _ratio(mem_used, m.mem_total_bytes)
    disk_ratio, disk_text = _ratio(disk_used, m.disk_total_bytes)
    return {
        "load": load,
        "mem_ratio": mem_ratio,
        "mem_text": mem_text,
        "disk_ratio": disk_ratio,
        "disk_text": disk_text,
    }


def telemetry(node: NodeView | None, now: datetime) -> Html:
    """The centre panel for the selected node (present but hidden when none is)."""
    if node is None:
        values: dict[str, Html | str] = {
            "node_id": "",
            "hostname": "",
            "os_profile": "",
            "vaultmesh_root": "",
            "interval": "",
            "last_seen": tag("time", "", data_relative="", data_field="last_seen"),
            "first_seen": tag("time", "", data_relative="", data_field="first_seen"),
            "cloudflare": tag("span", "", class_="check", data_field="cloudflare_ok"),
            "services": tag("span", "", class_="check", data_field="services_ok"),
            "reasons": NOTHING,
            **_metric_values(None),
        }
        return render("telemetry.html", pill=pill(None), hidden=HIDDEN, selection_hint="", **values)
    return render(
        "telemetry.html",
        node_id=str(node.node_id),
        hostname=node.hostname,
        pill=pill(node.status),
        os_profile=node.os_profile,
        vaultmesh_root=node.vaultmesh_root,
        last_seen=time_ago(node.last_seen, now, field="last_seen"),
        first_seen=time_ago(node.first_seen, now, field="first_seen"),
        interval=f"{node.interval_s:g} s",
        cloudflare=check(node.cloudflare_ok, "cloudflare_ok"),
        services=check(node.services_ok, "services_ok"),
        reasons=join(tag("li", reason) for reason in node.reasons),
        hidden=NOTHING,
        selection_hint=HIDDEN,
        **_metric_values(node.metrics),
    )


def _state(data: ConsoleData) -> Html:
    nodes = [node.model_dump(mode="json") for node in data.nodes]
    selected = None if data.selected is None else str(data.selected.node_id)
    return script_json({"nodes": nodes, "selected": selected, "generated": rfc3339(data.now)})


def console_page(data: ConsoleData, banner: Html = NOTHING) -> Html:
    """The whole console document."""
    now, selected = data.now, data.selected
    nodes = sorted_nodes(data.nodes)
    hosts = {str(n.node_id): n.hostname for n in nodes}
    troubled = [n for n in nodes if n.status is not NodeStatus.OK]
    troubled.sort(key=lambda n: n.status is not NodeStatus.CRIT)
    selected_id = None if selected is None else selected.node_id
    body = render(
        "console.html",
        banner=banner,
        kpis=kpis(data.counts),
        generated=rfc3339(now),
        node_items=join(node_item(n, now, n.node_id == selected_id) for n in nodes),
        nodes_empty=HIDDEN if nodes else NOTHING,
        telemetry=telemetry(selected, now),
        timeline=event_items(data.timeline, now, hosts),
        timeline_empty=HIDDEN if data.timeline else NOTHING,
        attention=join(attention_item(n) for n in troubled),
        attention_empty=HIDDEN if troubled else NOTHING,
        scans=event_items(data.scans, now, hosts),
        scans_empty=HIDDEN if data.scans else NOTHING,
        feed=event_items(data.feed, now, hosts),
        feed_empty=HIDDEN if data.feed else NOTHING,
        node_item_template=blank_node_item(),
        attention_template=attention_item(None),
        event_template=event_item(None, now, hosts),
        state=_state(data),
    )
    return render(
        "layout.html", title="Mission console", page="console", script="console.js", body=body
    )
