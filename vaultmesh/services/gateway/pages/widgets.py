"""Small page widgets shared by the dashboard and the console.

The JavaScript in ``static/vm.js`` builds the same markup for live updates, so a
change to a class name or data attribute here must be mirrored there.
"""

from __future__ import annotations

from datetime import datetime

from vaultmesh.services.gateway.pages.html import Html, join, tag
from vaultmesh.shared.clock import rfc3339
from vaultmesh.shared.models.fleet import FleetCounts, NodeStatus

PILL_CLASS = {NodeStatus.OK: "ok", NodeStatus.ATTN: "attn", NodeStatus.CRIT: "crit"}
PILL_TITLE = {
    NodeStatus.OK: "healthy",
    NodeStatus.ATTN: "needs attention",
    NodeStatus.CRIT: "critical",
}
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def pill(status: NodeStatus | None) -> Html:
    """The status pill (OK / ATTN / CRIT), or a pending one while the status is unknown."""
    if status is None:
        return tag("span", "…", class_="pill pill-pending", data_field="status", title="pending")
    return tag(
        "span",
        status.value,
        class_=f"pill pill-{PILL_CLASS[status]}",
        data_field="status",
        title=PILL_TITLE[status],
    )


def check(ok: bool, field: str) -> Html:
    """A check result as a symbol plus words, so it does not rely on colour alone."""
    text, cls = ("✓ ok", "check-ok") if ok else ("✗ failing", "check-fail")
    return tag("span", text, class_=f"check {cls}", data_field=field)


def age_text(seconds: float) -> str:
    """How long ago, in the coarsest unit that still reads well ("12 s ago")."""
    secs = max(0, int(seconds))
    if secs < 5:
        return "just now"
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if secs < limit:
            return f"{secs // size} {unit} ago"
    return f"{secs // 86400} d ago"


def time_ago(when: datetime, now: datetime, field: str | None = None) -> Html:
    """A ``<time>`` showing relative age, with the exact RFC 3339 time on hover."""
    exact = rfc3339(when)
    text = age_text((now - when).total_seconds())
    return tag("time", text, datetime=exact, title=exact, data_relative="", data_field=field)


def fmt_bytes(count: int | None) -> str:
    """Binary-prefixed size ("3.2 GiB"); an em dash when unknown."""
    if count is None:
        return "—"
    value = float(count)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_UNITS[-1]}"  # pragma: no cover - loop always returns


def short_id(node_id: object) -> str:
    """The first block of a UUID, enough to tell nodes apart at a glance."""
    return str(node_id).split("-", 1)[0]


def kpis(counts: FleetCounts) -> Html:
    """The fleet KPIs as a description list (total / healthy / attention / critical)."""
    items = (
        ("total", "Total", counts.total),
        ("healthy", "Healthy", counts.healthy),
        ("attention", "Attention", counts.attention),
        ("critical", "Critical", counts.critical),
    )
    return join(
        tag(
            "div",
            join([tag("dt", label), tag("dd", str(value), data_kpi=key)]),
            class_=f"kpi kpi-{key}",
        )
        for key, label, value in items
    )
