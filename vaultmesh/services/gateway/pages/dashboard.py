"""The dashboard (``GET /``): the fleet as one server-rendered table.

Readable without JavaScript; ``static/dashboard.js`` patches rows in place from
the SSE stream and clones ``#row-template`` for nodes that appear later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vaultmesh.services.gateway.pages.feed import event_item, event_items
from vaultmesh.services.gateway.pages.html import Html, join, render, tag
from vaultmesh.services.gateway.pages.widgets import check, kpis, pill, short_id, time_ago
from vaultmesh.shared.clock import rfc3339
from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.models.fleet import FleetCounts, NodeView

HIDDEN = Html(" hidden")
NOTHING = Html("")


def node_row(node: NodeView, now: datetime) -> Html:
    """One table row; ``data-node-id`` is what the live updates key on."""
    node_id = str(node.node_id)
    cells = [
        tag(
            "td",
            tag(
                "a",
                tag("code", short_id(node_id), title=node_id, data_field="short_id"),
                href=f"/console?node={node_id}",
                data_field="link",
            ),
        ),
        tag("td", node.hostname, data_field="hostname", class_="hostname"),
        tag("td", node.os_profile, data_field="os_profile"),
        tag("td", pill(node.status)),
        tag("td", time_ago(node.last_seen, now, field="last_seen")),
        tag("td", check(node.cloudflare_ok, "cloudflare_ok")),
        tag("td", check(node.services_ok, "services_ok")),
    ]
    return tag("tr", join(cells), data_node_id=node_id, data_status=node.status.value)


def blank_row() -> Html:
    """The row the script clones for a node that first appears after page load."""
    cells = [
        tag("td", tag("a", tag("code", "", data_field="short_id"), href="#", data_field="link")),
        tag("td", "", data_field="hostname", class_="hostname"),
        tag("td", "", data_field="os_profile"),
        tag("td", pill(None)),
        tag("td", tag("time", "", data_relative="", data_field="last_seen")),
        tag("td", tag("span", "", class_="check", data_field="cloudflare_ok")),
        tag("td", tag("span", "", class_="check", data_field="services_ok")),
    ]
    return tag("tr", join(cells), data_node_id="", data_status="")


def sorted_nodes(nodes: Sequence[NodeView]) -> list[NodeView]:
    """Nodes in a stable, human order: by hostname, then id."""
    return sorted(nodes, key=lambda n: (n.hostname.lower(), str(n.node_id)))


def dashboard_page(
    nodes: Sequence[NodeView],
    counts: FleetCounts,
    activity: Sequence[EventEnvelope],
    now: datetime,
    banner: Html = NOTHING,
) -> Html:
    """The whole dashboard document; ``activity`` is recent human events, newest first."""
    rows = join(node_row(node, now) for node in sorted_nodes(nodes))
    hosts = {str(n.node_id): n.hostname for n in nodes}
    body = render(
        "dashboard.html",
        banner=banner,
        kpis=kpis(counts),
        generated=rfc3339(now),
        rows=rows,
        empty_hidden=HIDDEN if nodes else NOTHING,
        row_template=blank_row(),
        activity=event_items(activity, now, hosts),
        activity_empty=HIDDEN if activity else NOTHING,
        event_template=event_item(None, now, hosts),
    )
    return render(
        "layout.html", title="Dashboard", page="dashboard", script="dashboard.js", body=body
    )


def unavailable_banner(message: str) -> Html:
    """A visible notice that the data below is missing or stale, and why."""
    return tag(
        "p",
        f"Fleet data is unavailable right now: {message}. The page retries live updates.",
        class_="banner banner-error",
        role="alert",
    )
