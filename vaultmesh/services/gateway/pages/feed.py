"""Events as list items: the console's feeds and timeline, the dashboard's recent activity.

``VM.eventSummary`` in ``static/vm.js`` mirrors ``event_summary``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from vaultmesh.services.gateway.pages.html import Html, join, tag
from vaultmesh.services.gateway.pages.widgets import time_ago
from vaultmesh.shared.models.events import EventEnvelope, EventKind


def event_summary(event: EventEnvelope) -> str:
    """A one-line description: the body, or what an attention change or scan says."""
    if event.kind is EventKind.ATTENTION:
        data = event.data
        reasons = "; ".join(str(r) for r in data.get("reasons") or [])
        change = f"{data.get('previous') or 'new'} → {data.get('status', '?')}"
        return f"{change} · {reasons}" if reasons else change
    if event.body:
        return event.body
    summary = event.data.get("summary")
    return str(summary) if summary is not None else ""


def event_item(event: EventEnvelope | None, now: datetime, hostnames: Mapping[str, str]) -> Html:
    """One event in a feed or timeline (``None`` gives the blank template)."""
    if event is None:
        when = tag("time", "", data_relative="", data_field="ts")
        kind, sev, node, author, body, ev_id = "", "info", "", "", "", ""
    else:
        node_key = "" if event.node_id is None else str(event.node_id)
        when = time_ago(event.ts, now, field="ts")
        kind, sev, ev_id = event.kind.value, event.severity.value, event.id
        node = hostnames.get(node_key, node_key[:8]) if node_key else "fleet"
        author, body = event.author, event_summary(event)
    parts = [
        when,
        tag("span", kind, class_="ev-kind", data_field="kind"),
        tag("span", node, class_="ev-node", data_field="node"),
        tag("span", author, class_="ev-author", data_field="author"),
        tag("p", body, class_="ev-body", data_field="body"),
    ]
    return tag(
        "li",
        join(parts),
        class_=f"event kind-{kind} sev-{sev}",
        data_event_id=ev_id,
        data_kind=kind,
    )


def event_items(
    events: Sequence[EventEnvelope], now: datetime, hostnames: Mapping[str, str]
) -> Html:
    """Several events, in the order given."""
    return join(event_item(event, now, hostnames) for event in events)
