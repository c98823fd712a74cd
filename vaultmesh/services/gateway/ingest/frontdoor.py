"""The gateway's HTTP protocol: plain heartbeat posts answered here, everything else by uvicorn.

Heartbeat ingest is the gateway's hot path: every node posts one per interval.
Through ASGI each post pays for a request task, a scope, receive and send
messages and two socket writes before any gateway code runs, and that was most
of the gateway's CPU per heartbeat. This protocol, given to uvicorn as its
``http`` class, reads a connection's requests itself for as long as they are
*plain* heartbeat posts (framing.py), and answers each through
``HeartbeatHandler`` (handler.py, the one the FastAPI route uses too) with one
write. The first request that is anything else (a page, an API call, a chunked
or oversized heartbeat, bytes that do not parse) is handed over with the rest
of the connection, byte for byte from that request's first byte, to uvicorn's
own httptools protocol (held to the same limits,
httpserver/bounded_httptools.py), which serves it through FastAPI: one HTTP
implementation for everything but the hot path, and the same answers either
way.

Requests on one connection are answered in order, one at a time; pipelined
ones wait in the buffer, and reading pauses when too many pile up. A
connection idle for uvicorn's keep-alive timeout is closed, and at shutdown a
connection closes once its current answer is written.

The limits (httpserver/limits.py) hold here too: a connection past the cap is
refused as it is accepted, a heartbeat post's head over the size or
header-count limit is answered 431, and a request not received whole within the deadline 408 (the
guard's one sweep checks it; the hot path only notes when a request that is
not yet whole began).

What the app's middleware does on the ASGI path is done here as well, or cannot
apply: a post is plain only when its Content-Length is within the body limit
(a larger one goes to uvicorn, where ``BodyLimit`` answers 413), and each
answer is counted in ``vaultmesh_requests_total`` as ``RequestMetrics`` would
(``_answer``). tests/integration/test_gateway_paths.py compares the two paths.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, cast

from uvicorn.config import Config
from uvicorn.server import ServerState

from vaultmesh.services.gateway.httpserver.answers import Reply, encode
from vaultmesh.services.gateway.httpserver.bounded_httptools import BoundedHttpTools
from vaultmesh.services.gateway.httpserver.connections import ConnectionGuard
from vaultmesh.services.gateway.httpserver.limits import HttpLimits, Refusal
from vaultmesh.services.gateway.ingest.contract import ENDPOINT
from vaultmesh.services.gateway.ingest.framing import (
    HEAD_TOO_LARGE,
    MORE,
    OTHER,
    Head,
    HeartbeatPost,
    frame,
)
from vaultmesh.services.gateway.ingest.handler import STORED, HeartbeatHandler

PAUSE_READING_AT = 256 * 1024  # buffered (pipelined) bytes at which reading pauses


class FrontDoor(asyncio.Protocol):
    """One connection: plain heartbeat posts served here, the rest handed to uvicorn.

    uvicorn builds one per connection (``Config(http=...)``); ``front_door``
    binds the heartbeat handler, the limits and the connection guard of one app.
    """

    handler: ClassVar[HeartbeatHandler]
    limits: ClassVar[HttpLimits]
    guard: ClassVar[ConnectionGuard]
    heads: ClassVar[dict[bytes, Head]] = {}
    stored_answer: ClassVar[tuple[list[tuple[bytes, bytes]], bytes] | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._connections: set[Any] = server_state.connections
        self._app_state = app_state
        self._loop = _loop or asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._busy = False  # a heartbeat is being answered
        self._started = 0.0  # when its answer began (vaultmesh_request_seconds)
        # The head of the post answered now, or last (framing.py reuses it).
        self._last: Head | None = None
        self._serving = False  # inside _serve_next's loop
        self._closing = False  # close once the current answer is written
        self._read_paused = False
        self._write_paused = False
        self._last_seen = 0.0
        # When the buffered request that is not yet whole began (None: no such request).
        self._request_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._delegate: BoundedHttpTools | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the connection (unless too many are open) and start its idle clock."""
        # uvloop's TCP transport has the Transport methods without the base class.
        self._transport = cast(asyncio.Transport, transport)
        if not self.guard.admit(self._connections, self._transport, self._loop):
            return
        self._connections.add(self)
        self._last_seen = self._loop.time()
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        """Buffer the bytes and serve what they complete."""
        if self._delegate is not None:
            self._delegate.data_received(data)
            return
        self._buf += data
        self._last_seen = self._loop.time()
        if not self._busy:
            self._serve_next()
        # Pipelined requests pile up while one is answered or the client reads nothing
        # (after a hand-over the buffer is empty and the transport is uvicorn's).
        waiting = self._busy or self._write_paused
        if waiting and len(self._buf) > PAUSE_READING_AT and not self._read_paused:
            self._read_paused = True
            self._transport_or_fail().pause_reading()

    def eof_received(self) -> bool | None:
        """The client will send nothing more: the transport closes (as uvicorn does)."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection (an answer in progress finds the transport closed)."""
        self._connections.discard(self)
        self._cancel_idle_timer()

    def pause_writing(self) -> None:
        """The client is not reading: start no new answer until it does."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """The client reads again."""
        self._write_paused = False
        if not self._busy:
            self._resume_reading()
            self._serve_next()

    # -- uvicorn's server -------------------------------------------------------------
    def shutdown(self) -> None:
        """Graceful shutdown: close now when idle, else after the current answer."""
        if self._busy:
            self._closing = True
        else:
            self._transport_or_fail().close()

    # -- serving ----------------------------------------------------------------------
    def _transport_or_fail(self) -> asyncio.Transport:
        if self._transport is None:
            raise RuntimeError("no connection yet")
        return self._transport

    def _serve_next(self) -> None:
        """Serve buffered requests until one waits for its answer (or for more bytes)."""
        if self._serving:
            return  # an answer given at once, inside the loop below: the loop goes on
        self._serving = True
        try:
            while not self._busy and self._delegate is None and self._serve_one():
                pass
        finally:
            self._serving = False
        # A request left in the buffer is not whole yet (or waits on a client that
        # reads nothing): its deadline runs from now.
        if self._buf and not self._busy and self._request_since is None:
            self._request_since = self._loop.time()

    def _serve_one(self) -> bool:
        """Start on the request at the head of the buffer; False when there is none to start."""
        transport = self._transport_or_fail()
        if not self._buf or self._write_paused or transport.is_closing():
            return False
        request = frame(self._buf, self.limits, self.heads, self._last)
        if request is MORE:
            return False
        if not isinstance(request, HeartbeatPost):
            if request is OTHER:
                self._hand_over(transport)
            else:
                too_large = request is HEAD_TOO_LARGE
                self._refuse(
                    self.limits.head_too_large if too_large else self.limits.too_many_headers
                )
            return False
        del self._buf[: request.size]
        self._request_since = None
        self._last = request.head
        self._busy = True
        self._started = time.perf_counter()
        # The answer comes through _answer: at once for a refusal, after the ack otherwise.
        self.handler.receive(request.headers, request.body, self._answer)
        return True

    def _answer(self, reply: Reply) -> None:
        # RequestMetrics' count, which this path does not pass through.
        self.handler.state.metrics.count_request(
            ENDPOINT, reply.status, time.perf_counter() - self._started
        )
        self._server_state.total_requests += 1
        transport = self._transport_or_fail()
        head = self._last
        keep_alive = head is not None and head.keep_alive and not self._closing
        if transport.is_closing():
            return
        transport.write(self._encoded(reply, keep_alive))
        if not keep_alive:
            transport.close()
            return
        self._busy = False
        self._last_seen = self._loop.time()
        self._resume_reading()
        self._serve_next()
        if self._delegate is None:
            self._arm_idle_timer()

    def _encoded(self, reply: Reply, keep_alive: bool) -> bytes:
        # uvicorn replaces default_headers (date, server) once a second: until then the
        # bytes of the usual answer ("stored", connection kept) stay the same.
        defaults = self._server_state.default_headers
        if reply is not STORED or not keep_alive:
            return encode(reply, defaults, keep_alive)
        cached = type(self).stored_answer
        if cached is None or cached[0] is not defaults:
            cached = type(self).stored_answer = (defaults, encode(reply, defaults, True))
        return cached[1]

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            self._transport_or_fail().resume_reading()

    def _hand_over(self, transport: asyncio.Transport) -> None:
        """Give the connection, from the buffered request on, to uvicorn's protocol."""
        self._connections.discard(self)
        self._cancel_idle_timer()
        self._resume_reading()
        delegate = BoundedHttpTools(
            config=self._config,
            server_state=self._server_state,
            app_state=self._app_state,
            _loop=self._loop,
            guard=self.guard,
            since=self._request_since,
        )
        self._delegate = delegate
        transport.set_protocol(delegate)
        delegate.connection_made(transport)
        if self._write_paused:
            delegate.pause_writing()
        data, self._buf = bytes(self._buf), bytearray()
        delegate.data_received(data)

    # -- limits -----------------------------------------------------------------------
    def expire_if_late(self, now: float) -> None:
        """Refuse (408) the buffered request if it began too long before ``now``."""
        since = self._request_since
        if since is None or self._busy or self._delegate is not None:
            return
        if now - since >= self.limits.request_timeout_s:
            self._refuse(self.limits.too_slow)

    def _refuse(self, refusal: Refusal) -> None:
        """Answer ``refusal`` and close (the rest of the buffer is not read)."""
        self._buf.clear()
        self._request_since = None
        self._closing = True
        transport = self._transport_or_fail()
        self.guard.refuse(transport, refusal, self._server_state.default_headers)

    # -- idle connections -------------------------------------------------------------
    def _arm_idle_timer(self) -> None:
        if self._idle_timer is None:
            delay = self._config.timeout_keep_alive
            self._idle_timer = self._loop.call_later(delay, self._check_idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _check_idle(self) -> None:
        self._idle_timer = None
        transport = self._transport
        if self._delegate is not None or self._busy or transport is None:
            return  # handed over, or the answer in progress re-arms the timer
        if transport.is_closing():
            return
        idle = self._loop.time() - self._last_seen
        if idle >= self._config.timeout_keep_alive:
            transport.close()
        else:
            delay = self._config.timeout_keep_alive - idle
            self._idle_timer = self._loop.call_later(delay, self._check_idle)


def front_door(handler: HeartbeatHandler, limits: HttpLimits) -> type[FrontDoor]:
    """The FrontDoor class uvicorn should build for an app with this handler and these limits."""

    class AppFrontDoor(FrontDoor):
        """FrontDoor bound to one app."""

    AppFrontDoor.handler = handler
    AppFrontDoor.limits = limits
    AppFrontDoor.guard = ConnectionGuard(limits, handler.state.metrics)
    AppFrontDoor.heads = {}
    return AppFrontDoor
