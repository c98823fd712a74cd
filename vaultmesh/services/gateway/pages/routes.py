"""Page routes: fetch the fleet from fleet-state (via ``app.state.fleet``) and render it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, NoReturn
from urllib.parse import urlsplit
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from vaultmesh.services.gateway.api import publish_event
from vaultmesh.services.gateway.auth.authenticator import Principal, require_admin_page
from vaultmesh.services.gateway.bodies import form_fields
from vaultmesh.services.gateway.errors import InvalidInput
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.services.gateway.http_errors import route_label
from vaultmesh.services.gateway.pages.console import ConsoleData, console_page
from vaultmesh.services.gateway.pages.dashboard import dashboard_page, unavailable_banner
from vaultmesh.services.gateway.pages.html import Html
from vaultmesh.services.gateway.state import gateway_state
from vaultmesh.shared.errors import Forbidden, VaultMeshError
from vaultmesh.shared.models.events import (
    HUMAN_KINDS,
    EventEnvelope,
    EventKind,
    EventsQuery,
    NewEvent,
)
from vaultmesh.shared.models.fleet import FleetCounts, NodeView
from vaultmesh.shared.validation import describe

FEED_LIMIT = 50
SCAN_LIMIT = 20
TIMELINE_LIMIT = 50
ACTIVITY_LIMIT = 10

# Scripts and styles come only from /static; no inline code, no third parties.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(dependencies=[Depends(require_admin_page)], include_in_schema=False)


def _fleet(request: Request) -> FleetClient:
    fleet: FleetClient = request.app.state.fleet
    return fleet


def _page(markup: Html, degraded: bool) -> HTMLResponse:
    # A page without fleet data still renders (so the operator sees why), as a 503.
    return HTMLResponse(markup, status_code=503 if degraded else 200, headers=PAGE_HEADERS)


def _empty_counts() -> FleetCounts:
    return FleetCounts(total=0, healthy=0, attention=0, critical=0)


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> HTMLResponse:
    """The fleet table."""
    fleet, now = _fleet(request), datetime.now(UTC)
    try:
        listing, counts, recent = await asyncio.gather(
            fleet.list_nodes(), fleet.counts(), fleet.events(EventsQuery(limit=FEED_LIMIT))
        )
    except VaultMeshError as exc:
        banner = unavailable_banner(exc.message)
        return _page(dashboard_page([], _empty_counts(), [], now, banner), degraded=True)
    activity = [e for e in recent.events if e.kind in HUMAN_KINDS][:ACTIVITY_LIMIT]
    return _page(dashboard_page(listing.nodes, counts, activity, now), degraded=False)


def _pick(nodes: list[NodeView], wanted: str | None) -> NodeView | None:
    """The node named by ``?node=``, else the first by hostname, else none."""
    try:
        wanted_id = UUID(wanted) if wanted else None
    except ValueError:
        wanted_id = None
    for node in nodes:
        if node.node_id == wanted_id:
            return node
    return min(nodes, key=lambda n: (n.hostname.lower(), str(n.node_id)), default=None)


async def _timeline(fleet: FleetClient, node: NodeView | None) -> list[EventEnvelope]:
    if node is None:
        return []
    query = EventsQuery(node_id=node.node_id, limit=TIMELINE_LIMIT)
    return (await fleet.events(query)).events


async def _console_data(fleet: FleetClient, wanted: str | None, now: datetime) -> ConsoleData:
    listing, counts, feed, scans = await asyncio.gather(
        fleet.list_nodes(),
        fleet.counts(),
        fleet.events(EventsQuery(limit=FEED_LIMIT)),
        fleet.events(EventsQuery(kind=EventKind.SCAN, limit=SCAN_LIMIT)),
    )
    selected = _pick(listing.nodes, wanted)
    timeline = await _timeline(fleet, selected)
    return ConsoleData(
        nodes=listing.nodes,
        counts=counts,
        feed=[e for e in feed.events if e.kind is not EventKind.HEARTBEAT],
        scans=scans.events,
        timeline=timeline,
        selected=selected,
        now=now,
    )


@router.get("/console", response_class=HTMLResponse)
async def console(request: Request, node: str | None = None) -> HTMLResponse:
    """The mission console; ``?node=<id>`` selects a node."""
    now = datetime.now(UTC)
    try:
        data = await _console_data(_fleet(request), node, now)
    except VaultMeshError as exc:
        empty = ConsoleData([], _empty_counts(), [], [], [], None, now)
        return _page(console_page(empty, unavailable_banner(exc.message)), degraded=True)
    return _page(console_page(data), degraded=False)


# The fields of the console's event form (everything else in a post is ignored).
_FORM_FIELDS = ("kind", "severity", "author", "body", "node_id")


def _same_site(request: Request) -> None:
    """Refuse a form post unless the browser shows it comes from this site (counted).

    The cookie is SameSite=Lax, so this is the second line of defence. Browsers send
    ``Sec-Fetch-Site`` and, on every POST, ``Origin``; a post is accepted only when one of
    them positively names this site and neither names anything else. ``Origin: null``
    (sandboxed frames, ``data:`` documents, and Chromium's own same-origin posts under
    ``Referrer-Policy: no-referrer``, which these pages send) names no site: it passes only
    with ``Sec-Fetch-Site: same-origin``, which no page can forge. A post with neither
    header proves nothing and is refused.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    named = origin not in (None, "null")  # an Origin that names a site
    same_origin = named and urlsplit(str(origin)).netloc == host
    if fetch_site not in (None, "same-origin") or (named and not same_origin):
        _refuse(request, "cross_site", "cross-site form post refused")
    if fetch_site is None and not same_origin:
        _refuse(request, "no_origin", "form post refused: no same-site Origin or Sec-Fetch-Site")


def _refuse(request: Request, code: str, message: str) -> NoReturn:
    gateway_state(request).metrics.base.count_bad_input(route_label(request), code)
    raise Forbidden(message)


@router.post("/console/events")
async def post_from_console(
    request: Request, principal: Annotated[Principal, Depends(require_admin_page)]
) -> RedirectResponse:
    """The console's event form without JavaScript: post, then back to the node (303)."""
    _same_site(request)
    form = form_fields(await request.body())
    fields = {name: form[name][0] for name in _FORM_FIELDS if form.get(name, [""])[0]}
    try:
        new = NewEvent.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(f"invalid event: {describe(exc)}") from None
    await publish_event(gateway_state(request), new, principal)
    target = f"/console?node={new.node_id}" if new.node_id else "/console"
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
