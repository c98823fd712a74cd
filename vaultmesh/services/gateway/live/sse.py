"""``GET /events``: Server-Sent Events from the JetStream streams, resumable by ``Last-Event-ID``.

Wire format (one block per event, UTF-8)::

    id: <events seq>.<heartbeats seq>
    event: <kind>
    data: <one line of JSON>

A first block carries only ``retry:`` and ``id:`` (the starting cursor), so a
browser that reconnects before any event arrived still resumes from where it
connected. ``: keepalive`` comments go out when nothing else did for
``sse_keepalive_s`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from vaultmesh.services.gateway.auth.authenticator import require_admin
from vaultmesh.services.gateway.errors import InvalidInput, TooManyClients
from vaultmesh.services.gateway.http_errors import error_responses
from vaultmesh.services.gateway.live.cursor import Cursor, parse_cursor
from vaultmesh.services.gateway.live.feeds import EventFeed, Item
from vaultmesh.services.gateway.state import GatewayState, gateway_state
from vaultmesh.shared.models.events import EventKind

RETRY_MS = 3000
KEEPALIVE = b": keepalive\n\n"
HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # tell buffering reverse proxies to pass events through
}

router = APIRouter()


def frame(item: Item, cursor: Cursor) -> bytes:
    """One SSE block for ``item`` (its JSON data never contains a newline)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        cursor.encode().encode(),
        item.kind.encode(),
        item.data,
    )


def advance(cursor: Cursor, item: Item) -> Cursor | None:
    """The cursor after ``item``, or None when ``item`` was already delivered."""
    if item.stream == "events":
        return None if item.seq <= cursor.events else cursor.after_event(item.seq)
    return None if item.seq <= cursor.heartbeats else cursor.after_heartbeat(item.seq)


class EventStreamResponse(Response):
    """Streams a feed until the client leaves or the gateway shuts down."""

    media_type = "text/event-stream"

    def __init__(
        self,
        feed: EventFeed,
        start: Cursor,
        *,
        keepalive_s: float,
        closing: asyncio.Event,
        on_sent: Callable[[str], None],
        on_done: Callable[[], None],
    ) -> None:
        # Like Starlette's StreamingResponse: no body attribute, so no Content-Length.
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)
        self._feed = feed
        self._cursor = start
        self._keepalive = keepalive_s
        self._closing = closing
        self._on_sent = on_sent
        self._on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI response: headers, first cursor block, then events until stopped."""
        stop = asyncio.create_task(_until_stopped(receive, self._closing))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            opening = b"retry: %d\nid: %s\n\n" % (RETRY_MS, self._cursor.encode().encode())
            await send({"type": "http.response.body", "body": opening, "more_body": True})
            await self._pump(send, stop)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write
        finally:
            stop.cancel()
            await self._feed.close()
            self._on_done()

    async def _pump(self, send: Send, stop: asyncio.Task[None]) -> None:
        getter: asyncio.Task[Item] | None = None
        try:
            while not stop.done():
                getter = getter or asyncio.create_task(self._feed.next())
                done, _ = await asyncio.wait(
                    {getter, stop}, timeout=self._keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                if stop in done:
                    return
                body = KEEPALIVE
                if getter in done:
                    item, getter = getter.result(), None
                    cursor = advance(self._cursor, item)
                    if cursor is None:
                        continue
                    self._cursor, body = cursor, frame(item, cursor)
                    self._on_sent(item.kind)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            if getter is not None:
                getter.cancel()


async def _until_stopped(receive: Receive, closing: asyncio.Event) -> None:
    """Return when the client disconnects or the gateway starts shutting down."""
    closing_wait = asyncio.create_task(closing.wait())

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    client = asyncio.create_task(disconnected())
    try:
        await asyncio.wait({closing_wait, client}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing_wait.cancel()
        client.cancel()


def _resume_point(request: Request, last_event_id: str | None) -> Cursor | None:
    state = gateway_state(request)
    if last_event_id is not None:
        cursor = parse_cursor(last_event_id)
        if cursor is None:
            raise InvalidInput("last_event_id: not a cursor from this gateway")
        return cursor
    header = request.headers.get("last-event-id")
    if not header:
        return None
    cursor = parse_cursor(header)
    if cursor is None:
        # A browser would give up for good on an error status; start fresh instead.
        state.metrics.count_bad_input("/events", "bad_cursor")
    return cursor


@router.get(
    "/events",
    status_code=200,
    response_class=EventStreamResponse,
    responses={
        200: {"description": "An endless text/event-stream; see docs/gateway.md"},
        **error_responses(401, 422, 503),
    },
    summary="Live events (Server-Sent Events), resumable with Last-Event-ID",
)
async def events_stream(
    request: Request,
    _admin: Annotated[object, Depends(require_admin)],
    node_id: UUID | None = None,
    kind: EventKind | None = None,
    last_event_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Stream events of every kind (or one ``kind``), optionally for one node."""
    state: GatewayState = gateway_state(request)
    resume = _resume_point(request, last_event_id)
    if not state.sse_slots.acquire():
        raise TooManyClients("too many event-stream clients; retry later")
    feed = EventFeed(
        state.publisher.js,
        kind=kind,
        node_id=node_id,
        queue_size=state.settings.sse_queue_size,
        on_bad=lambda stream: state.metrics.count_bad_input(f"sse-{stream}", "bad_message"),
    )
    try:
        start = await feed.open(resume)
    except BaseException:
        state.sse_slots.release()
        raise
    return EventStreamResponse(
        feed,
        start,
        keepalive_s=state.settings.sse_keepalive_s,
        closing=state.closing,
        on_sent=state.metrics.count_sse_event,
        on_done=state.sse_slots.release,
    )
