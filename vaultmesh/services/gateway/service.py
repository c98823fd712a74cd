"""The gateway process: the app served by uvicorn, as a runtime ``Component``.

``runtime.run_service`` owns the process (JSON logs, uvloop, NATS connect,
SIGTERM); this module binds the listening socket (a clear error when the port
is taken), serves the app, and on stop ends the event streams, lets in-flight
requests finish within the grace period, and returns so the runtime drains NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client

from vaultmesh.services.gateway.app import create_app
from vaultmesh.services.gateway.config import GatewaySettings
from vaultmesh.services.gateway.frontdoor import front_door
from vaultmesh.services.gateway.ingest import HeartbeatIngest
from vaultmesh.services.gateway.limits import HttpLimits
from vaultmesh.services.gateway.state import GatewayState
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.runtime import Component

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 30.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the service runtime owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"VAULTMESH_HTTP_HOST/PORT: cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class HttpServer:
    """Serves an ASGI app on a bound socket until stopped."""

    def __init__(self, app: FastAPI, sock: socket.socket, grace_s: float) -> None:
        self._app = app
        self._sock = sock
        state: GatewayState = app.state.gateway
        ingest = HeartbeatIngest(app.state.auth, state)
        config = uvicorn.Config(
            app,
            # Plain heartbeat posts are answered by the protocol itself (frontdoor.py).
            http=front_door(ingest, HttpLimits.from_settings(state.settings)),
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            # X-Forwarded-Proto is read where it matters (the cookie's Secure flag).
            proxy_headers=False,
            timeout_graceful_shutdown=int(max(1, grace_s)),
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually listened on."""
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        """Serve in the background; return once uvicorn accepts connections (idempotent)."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                raise Unavailable("the HTTP server did not start; see the log")
            await asyncio.sleep(0.02)
        log.info("listening", extra={"port": self.port})

    async def stop(self) -> None:
        """End event streams, finish in-flight requests, stop serving (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        state: GatewayState | None = getattr(self._app.state, "gateway", None)
        if state is not None:
            state.begin_shutdown()
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if state is not None:
            await state.audit.flushed()


Builder = Callable[[Client, ServiceMetrics], Awaitable[Component]]


def builder(settings: GatewaySettings) -> Builder:
    """The runtime builder: app on the runtime's connection and metrics, then the server."""

    async def build(nc: Client, metrics: ServiceMetrics) -> Component:
        app = create_app(settings, nc=nc, metrics=metrics)
        # Streams first, so a broken bus fails start-up with a clear message.
        await app.state.gateway.start()
        return HttpServer(
            app, bind(settings.http_host, settings.http_port), settings.shutdown_grace_s
        )

    return build
