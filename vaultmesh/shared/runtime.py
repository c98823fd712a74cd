"""The service process: lifecycle and main loop (micro endpoints live in ``micro``).

A service is a ``Component`` (``start``/``stop``) built by the service's own
builder from a connection, metrics and a clock. ``run_service`` does the rest
the same way for every service: JSON logs, uvloop, connect (fail fast), metrics
endpoint, start (retried while the NATS cluster forms), ready, wait for
SIGTERM/SIGINT, stop accepting, drain, close.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import uvloop
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import ServiceUnavailableError

from vaultmesh.shared import bus
from vaultmesh.shared.config import ConfigError, ServiceSettings, load_settings
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.logs import configure_logging
from vaultmesh.shared.metrics import ServiceMetrics, serve_metrics

log = logging.getLogger(__name__)
# Allocations before a young-generation collection (Python's default is 700).
_GEN0_THRESHOLD = 10_000


class Component(Protocol):
    """Anything with an explicit, idempotent lifecycle."""

    async def start(self) -> None:
        """Begin work; calling it twice is harmless."""
        ...

    async def stop(self) -> None:
        """Stop accepting work and finish what is in flight; calling it twice is harmless."""
        ...


Builder = Callable[[Client, ServiceMetrics], Awaitable[Component]]

# What a NATS cluster says while it is still forming (JetStream meta leader not
# elected yet, streams not placed): worth waiting for, not worth dying over.
TRANSIENT_START_ERRORS = (Unavailable, NatsError, TimeoutError, ServiceUnavailableError)


async def _undo_partial_start(component: Component) -> None:
    # start() may have got half way (a consumer created, then a stream call failed);
    # stop() is idempotent, so it puts the component back to a clean slate.
    try:
        await component.stop()
    except Exception:
        log.exception("cleanup after a failed start failed")


async def start_with_retry(component: Component, timeout_s: float, stop: asyncio.Event) -> None:
    """Start ``component``, retrying transient bus errors until ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            await component.start()
            return
        except TRANSIENT_START_ERRORS as exc:
            if time.monotonic() + delay > deadline or stop.is_set():
                raise Unavailable(f"could not start: {type(exc).__name__}: {exc}") from None
            log.warning("start failed; retrying", extra={"error_type": type(exc).__name__})
        await _undo_partial_start(component)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


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
        await start_with_retry(component, settings.start_timeout_s, stop)
        metrics.up.labels(name).set(1)
        _settle_memory()
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


def _settle_memory() -> None:
    """Once started: move everything allocated so far out of the garbage collector's
    view, and collect the young generation less often. A service allocates many short
    lived objects per request and few cycles; scanning the start-up heap again and
    again is pure cost."""
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GEN0_THRESHOLD, gen1, gen2)


def run_service(settings_cls: type[ServiceSettings], name: str, build_for: Any) -> int:
    """Process entry point shared by every service's ``__main__``; returns the exit code.

    ``build_for(settings)`` returns the service's ``Builder``.
    """
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
