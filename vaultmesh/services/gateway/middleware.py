"""Pure ASGI middleware (no per-request task or buffering): body limit and request metrics."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vaultmesh.shared.metrics import ServiceMetrics


async def _reply_413(send: Send, limit: int) -> None:
    # No "Connection: close": closing with unread body bytes makes the kernel reset the
    # connection, and the client may lose the 413; the server discards the rest instead.
    body = orjson.dumps({"error": f"body is larger than the limit of {limit} bytes"})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before anything parses them.

    A declared Content-Length is checked up front; a chunked body is counted as
    it arrives, and once it passes the limit the app sees a disconnect (so it
    stops reading) while the client gets the 413.
    """

    def __init__(self, app: ASGIApp, limit: int, metrics: ServiceMetrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with the limit enforced."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            self.metrics.count_bad_input("http", "payload_too_large")
            await _reply_413(send, self.limit)
            return
        await _LimitedExchange(self, receive, send).run(scope)


class _LimitedExchange:
    """One request whose body is counted as it streams in."""

    def __init__(self, owner: BodyLimit, receive: Receive, send: Send) -> None:
        self.owner = owner
        self.receive = receive
        self.send = send
        self.seen = 0
        self.refused = False

    async def run(self, scope: Scope) -> None:
        await self.owner.app(scope, self._receive, self._send)

    async def _receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.owner.limit:
                self.refused = True
                self.owner.metrics.count_bad_input("http", "payload_too_large")
                await _reply_413(self.send, self.owner.limit)
                return {"type": "http.disconnect"}
        return message

    async def _send(self, message: Message) -> None:
        if not self.refused:
            await self.send(message)


class RequestMetrics:
    """Count requests by route template, method and status, and time them."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app and record the outcome."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            endpoint = f"{scope.get('method', '?')} {path}"
            self.metrics.count_request(endpoint, str(status["code"]), time.perf_counter() - started)
