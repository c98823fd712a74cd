"""The service runtime: micro endpoints, lifecycle, and the process main loop.

A service is a ``Component`` (``start``/``stop``) built by the service's own
builder from a connection, metrics and a clock. ``run_service`` does the rest
the same way for every service: JSON logs, uvloop, connect (fail fast), metrics
endpoint, start, ready, wait for SIGTERM/SIGINT, stop accepting, drain, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import uvloop
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service
from pydantic import BaseModel

from vaultmesh import __version__
from vaultmesh.shared import bus, codec
from vaultmesh.shared.config import ConfigError, ServiceSettings
from vaultmesh.shared.errors import BadRequest, Internal, Unavailable, VaultMeshError
from vaultmesh.shared.logs import configure_logging
from vaultmesh.shared.metrics import ServiceMetrics, serve_metrics
from vaultmesh.shared.validation import parse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """One decoded request as a handler sees it."""

    subject: str
    payload: Any
    headers: dict[str, str]
    fmt: codec.WireFormat


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """A micro endpoint: name, subject, handler, optional request model."""

    name: str
    subject: str
    handler: Handler
    model: type[BaseModel] | None = None
    # Run each request in its own task (bounded), for handlers that wait on I/O.
    concurrent: bool = False


class Component(Protocol):
    """Anything with an explicit, idempotent lifecycle."""

    async def start(self) -> None:
        """Begin work; calling it twice is harmless."""
        ...

    async def stop(self) -> None:
        """Stop accepting work and finish what is in flight; calling it twice is harmless."""
        ...


class MicroService:
    """A ``nats.micro`` service whose endpoints speak the VaultMesh envelope."""

    def __init__(
        self,
        nc: Client,
        *,
        name: str,
        description: str,
        endpoints: list[Endpoint],
        metrics: ServiceMetrics,
        queue_group: str,
        max_request_bytes: int = codec.DEFAULT_MAX_BYTES,
        max_in_flight: int = 256,
    ) -> None:
        self._nc = nc
        self._name = name
        self._description = description
        self._endpoints = endpoints
        self._metrics = metrics
        self._queue_group = queue_group
        self._max_bytes = max_request_bytes
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._service: Service | None = None

    async def start(self) -> None:
        """Register the service and its endpoints (idempotent)."""
        if self._service is not None:
            return
        self._service = await add_service(
            self._nc,
            name=self._name,
            version=__version__,
            description=self._description,
            queue_group=self._queue_group,
        )
        for endpoint in self._endpoints:
            await self._service.add_endpoint(
                EndpointConfig(
                    name=endpoint.name,
                    subject=endpoint.subject,
                    handler=self._wrap(endpoint),
                )
            )
        # Make sure the server has every subscription before anyone is told we are ready.
        await self._nc.flush()

    async def stop(self) -> None:
        """Unsubscribe every endpoint and let in-flight requests finish (idempotent)."""
        if self._service is None:
            return
        service, self._service = self._service, None
        await service.stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    def _wrap(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[None]]:
        async def handle(request: Request) -> None:
            if not endpoint.concurrent:
                await self._serve(endpoint, request)
                return
            await self._slots.acquire()
            task = asyncio.create_task(self._serve(endpoint, request))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

        return handle

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _serve(self, endpoint: Endpoint, request: Request) -> None:
        started = time.perf_counter()
        fmt = codec.format_of(request.headers)
        error: VaultMeshError | None = None
        try:
            call = self._decode(endpoint, request, fmt)
            body = codec.success(await endpoint.handler(call))
        except VaultMeshError as exc:
            error = exc
        except Exception:
            log.exception("handler failed", extra={"endpoint": endpoint.name})
            error = Internal("internal error; see the service log")
        if error is not None:
            body = codec.failure(error)
            if isinstance(error, BadRequest):
                self._metrics.count_bad_input(endpoint.name, error.code)
        outcome = "ok" if error is None else error.code
        self._metrics.requests.labels(self._metrics.service, endpoint.name, outcome).inc()
        self._metrics.latency.labels(self._metrics.service, endpoint.name).observe(
            time.perf_counter() - started
        )
        await self._reply(request, body, fmt, error)

    def _decode(self, endpoint: Endpoint, request: Request, fmt: codec.WireFormat) -> Call:
        payload = codec.decode(request.data, fmt, self._max_bytes)
        if endpoint.model is not None:
            payload = parse(endpoint.model, payload)
        return Call(request.subject, payload, dict(request.headers or {}), fmt)

    async def _reply(
        self, request: Request, body: Any, fmt: codec.WireFormat, error: VaultMeshError | None
    ) -> None:
        try:
            data = codec.encode(body, fmt)
        except TypeError:
            log.exception("reply not encodable")
            error = Internal("internal error; see the service log")
            data = codec.encode(codec.failure(error), fmt)
        with contextlib.suppress(ValueError):  # a publish with no reply subject
            await request.respond(data, headers=codec.reply_headers(fmt, error))


Builder = Callable[[Client, ServiceMetrics], Awaitable[Component]]


async def serve(settings: ServiceSettings, name: str, build: Builder) -> None:
    """Connect, build, start and run ``name`` until SIGTERM/SIGINT, then drain."""
    metrics = ServiceMetrics(name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await bus.connect(settings, name)
    server = serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
    component = await build(nc, metrics)
    try:
        await component.start()
        metrics.up.labels(name).set(1)
        log.info("ready", extra={"nats": nc.connected_url.netloc if nc.connected_url else None})
        await stop.wait()
        log.info("stopping")
    finally:
        metrics.up.labels(name).set(0)
        await component.stop()
        await bus.close(nc)
        if server is not None:
            server.shutdown()
    log.info("stopped")


def run_service(settings_cls: type[ServiceSettings], name: str, build_for: Any) -> int:
    """Process entry point shared by every service's ``__main__``; returns the exit code.

    ``build_for(settings)`` returns the service's ``Builder``.
    """
    from vaultmesh.shared.config import load_settings

    try:
        settings = load_settings(settings_cls)
    except ConfigError as exc:
        configure_logging(name)
        log.error(str(exc))
        return 2
    configure_logging(name, settings.log_level)
    try:
        uvloop.run(serve(settings, name, build_for(settings)))
    except Unavailable as exc:
        log.error(str(exc))
        return 1
    except ConfigError as exc:
        log.error(str(exc))
        return 2
    return 0
