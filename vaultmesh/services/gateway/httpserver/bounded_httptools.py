"""uvicorn's httptools protocol held to the gateway's limits: every request but plain heartbeats.

The front door (ingest/frontdoor.py) hands a connection to this protocol at the
first request it does not serve itself. uvicorn's own protocol bounds no head:
httptools gathers a header's value in memory until the header ends, so one
header that never ends grows the process without limit, and a request that
trickles in is held for as long as it keeps coming. Here:

* a head's size and header count are added up as httptools reports them, and
  a head over the limits is answered 431;
* what httptools holds without reporting it (the header, or chunked-body
  trailer, being read) is bounded: bytes are fed to it in slices, and those fed
  since it last reported anything are counted, so a header that never ends is
  refused once past the limit — httptools holds at most the limit plus two
  slices of it;
* pipelined requests are parsed one ahead: uvicorn would parse every request
  in a read (a 256 KiB read of small pipelined requests is thousands of them,
  each with its scope and cycle) and queue them all; here, once one waits
  behind the request being answered, the rest of the bytes are held unparsed
  and reading stays paused until the queue is empty again;
* a request not received whole within the deadline is answered 408 (the
  guard's sweep asks, connections.py);
* a malformed request is answered ``{"error": ...}`` JSON, as every other
  error of the gateway, instead of uvicorn's plain text.

A refusal closes the connection. It is answered only when nothing else is owed
on the connection first; otherwise the connection is just closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from vaultmesh.services.gateway.httpserver.connections import ConnectionGuard
from vaultmesh.services.gateway.httpserver.limits import MALFORMED, Refusal

# Bytes fed to httptools at a time: how far past the head limit a head that never
# ends can get before it is refused, and how many small pipelined requests can be
# parsed ahead (a few dozen at most).
SLICE = 1024


class _Refused(Exception):
    """Raised from a parser callback to stop httptools at a head over the limits."""


class _HoldingFlow(FlowControl):
    """uvicorn's flow control, except that reading stays paused while input is held back."""

    def __init__(self, transport: asyncio.Transport, holding: Callable[[], bool]) -> None:
        super().__init__(transport)
        self._holding = holding

    def resume_reading(self) -> None:
        """Resume reading, unless bytes already read wait to be parsed."""
        if not self._holding():
            super().resume_reading()


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the gateway's limits on every request."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
        since: float | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard
        self._limits = guard.limits
        # When the request being received began (None: none is); ``since`` carries
        # the front door's clock over for a request it began to receive.
        self._since = since
        # Bytes fed since httptools last reported anything (over by less than a slice:
        # the slice in which it last reported counts whole).
        self._unreported = 0
        self._head_size = 0  # what httptools reported of the head: URL, header names and values
        self._header_count = 0
        self._request_cycle: RequestResponseCycle | None = None  # the request being received
        self._refusal: Refusal | None = None
        self._held = b""  # read but not parsed: a pipelined request waits already

    # -- bytes in ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """uvicorn's set-up, with flow control that knows about held bytes."""
        super().connection_made(transport)
        self.flow = _HoldingFlow(transport, self._holding)

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to httptools a slice at a time, refusing what breaks the limits."""
        if self._held:
            data, self._held = self._held + data, b""
        self._unset_keepalive_if_required()
        if self._since is None:
            self._since = self.loop.time()
        view = memoryview(data)
        for start in range(0, len(view), SLICE):
            if self.pipeline:
                # A request waits behind the one being answered: parse no further ahead.
                self._held = bytes(view[start:])
                self.flow.pause_reading()
                return
            piece = view[start : start + SLICE]
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserError:
                self._refuse(self._refusal or MALFORMED)
                return
            except httptools.HttpParserUpgrade:
                # As uvicorn: the rest of this data is not parsed.
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            if self.transport.is_closing():
                return
            self._unreported += len(piece)
            if self._unreported > self._limits.head_bytes + SLICE:
                self._refuse(self._limits.head_too_large)
                return

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a malformed request, in the gateway's ``{"error"}`` shape."""
        self._refuse(MALFORMED)

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        """A request begins: its head is counted from zero."""
        super().on_message_begin()
        if self._since is None:
            self._since = self.loop.time()
        self._unreported = 0
        self._head_size = 0
        self._header_count = 0
        self._request_cycle = None

    def on_url(self, url: bytes) -> None:
        """Count the URL into the head's size."""
        self._unreported = 0
        self._head_size += len(url)
        if self._head_size > self._limits.head_bytes:
            raise self._refusing(self._limits.head_too_large)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header (or trailer) into the head's size and header count."""
        self._unreported = 0
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_count > self._limits.headers:
            raise self._refusing(self._limits.too_many_headers)
        if self._head_size > self._limits.head_bytes:
            raise self._refusing(self._limits.head_too_large)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is whole: uvicorn starts the request (its cycle is the one received now)."""
        self._unreported = 0
        super().on_headers_complete()
        self._request_cycle = self.cycle

    def on_body(self, body: bytes) -> None:
        """Body bytes are reported (and bounded by the app's body limit)."""
        self._unreported = 0
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The request is whole: no deadline runs until the next one begins."""
        self._unreported = 0
        self._since = None
        self._request_cycle = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """An answer is written: a request that waited on it gets its time from now."""
        if self._since is not None:
            self._since = self.loop.time()
        super().on_response_complete()  # starts the next pipelined request, if one waits
        if self._held and not self.pipeline:
            self.loop.call_soon(self._feed_held)

    def _holding(self) -> bool:
        return bool(self._held)

    def _feed_held(self) -> None:
        """Parse the bytes held back while a pipelined request waited; read on once done."""
        if not self._held or self.pipeline or self.transport.is_closing():
            return
        data, self._held = self._held, b""
        self.data_received(data)
        if not self._held:
            self.flow.resume_reading()

    # -- limits -----------------------------------------------------------------------
    def expire_if_late(self, now: float) -> None:
        """Refuse (408) the request being received if it began too long before ``now``."""
        since = self._since
        if since is None or now - since < self._limits.request_timeout_s:
            return
        if self.transport.is_closing() or self._owes_earlier_answer():
            return  # the server's turn (uvicorn pauses reading for pipelined requests)
        self._refuse(self._limits.too_slow)

    def _owes_earlier_answer(self) -> bool:
        cycle = self.cycle
        if self.pipeline:
            return True
        return (
            cycle is not None and not cycle.response_complete and cycle is not self._request_cycle
        )

    def _refusing(self, refusal: Refusal) -> _Refused:
        self._refusal = refusal
        return _Refused(refusal.code)

    def _refuse(self, refusal: Refusal) -> None:
        self._since = None  # refused once: the sweep has nothing more to expire
        cycle = self.cycle
        # Answer only when the answer is the next thing the client expects to read.
        answer = not self._owes_earlier_answer() and (
            cycle is None or cycle.response_complete or not cycle.response_started
        )
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app reads no more and its answer is dropped
            cycle.message_event.set()
        self._guard.refuse(self.transport, refusal, self.server_state.default_headers, answer)
