"""uvicorn serving the gateway's app on a socket bound beforehand.

The socket is bound when the gateway is built, so a taken port fails start-up
with a clear error before anything else starts. uvicorn runs with the front
door as its protocol when given one (``http``); without one it is plain
uvicorn on h11, whose own bounds stand in for the gateway's limits where it
has one: the head's size and the number of connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from vaultmesh.services.gateway.httpserver.limits import HttpLimits
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import Unavailable

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

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        *,
        grace_s: float,
        limits: HttpLimits,
        http: type[asyncio.Protocol] | None,
    ) -> None:
        self._sock = sock
        config = uvicorn.Config(
            app,
            # Plain uvicorn on h11: it bounds a head's size (its httptools protocol does not).
            http=http or "h11",
            h11_max_incomplete_event_size=limits.head_bytes,
            # The front door caps connections itself, answering JSON (connections.py).
            limit_concurrency=None if http else limits.connections,
            # The gateway's component starts and stops the app's state itself.
            lifespan="off",
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
        """Finish in-flight requests within the grace period, stop serving (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
