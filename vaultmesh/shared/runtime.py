"""The service process: lifecycle and main loop (micro endpoints live in ``micro``).

A service is a ``Component`` (``start``/``stop``) built by its package's
``build_for(settings, clock=None)`` from a connection and metrics. ``run_service``
does the rest the same way for every service: JSON logs, uvloop, connect (fail
fast), metrics endpoint, start (retried while the NATS cluster forms), ready,
wait for SIGTERM/SIGINT (SIGHUP calls ``reload`` on a component that has one),
stop accepting, drain, close. ``run_process`` is the part every VaultMesh process
shares, bus service or not (the node agent uses it directly): settings, logs,
uvloop and exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

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


class Lifecycle:
    """Mixin: ``async with component:`` starts it and stops it (the class has start/stop)."""

    async def start(self) -> None:
        """Begin work (the class using the mixin defines it)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """End work (the class using the mixin defines it)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


@runtime_checkable
class Reloadable(Protocol):
    """A component that re-reads something on SIGHUP (the vault its ACL)."""

    def reload(self) -> object:
        """Re-read; keep the old state on error."""
        ...


class ProcessSettings(Protocol):
    """What ``run_process`` needs of a process's settings."""

    def level(self) -> str:
        """The log level name."""
        ...


Builder = Callable[[Client, ServiceMetrics], Awaitable[Component]]
S = TypeVar("S", bound=ServiceSettings)
P = TypeVar("P", bound=ProcessSettings)
T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

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


@contextlib.contextmanager
def on_signals(
    callback: Callable[[], object], signals: tuple[int, ...] = STOP_SIGNALS
) -> Iterator[None]:
    """While inside, call ``callback`` on each of ``signals`` (default SIGTERM/SIGINT)."""
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, callback)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def until_signalled(work: Awaitable[T]) -> T | None:
    """``work``'s result, or None when SIGTERM/SIGINT came first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    with on_signals(task.cancel):
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # Cancelled from outside (not by a signal): stop the work too, then propagate.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise
    return None if task.cancelled() else task.result()


async def serve(settings: ServiceSettings, name: str, build: Builder) -> None:
    """Connect, build, start and run ``name`` until SIGTERM/SIGINT, then drain."""
    metrics = ServiceMetrics(name)
    stop = asyncio.Event()
    with on_signals(stop.set):
        nc = await bus.connect(settings, name)
        server = serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
        component = await build(nc, metrics)
        try:
            await start_with_retry(component, settings.start_timeout_s, stop)
            metrics.up.labels(name).set(1)
            _settle_memory()
            log.info("ready", extra={"nats": nc.connected_url.netloc if nc.connected_url else None})
            await _until_stopped(component, stop)
            log.info("stopping")
        finally:
            metrics.up.labels(name).set(0)
            await component.stop()
            await bus.close(nc)
            if server is not None:
                server.shutdown()
    log.info("stopped")


async def _until_stopped(component: Component, stop: asyncio.Event) -> None:
    if not isinstance(component, Reloadable):
        await stop.wait()
        return
    # Only once started: before that SIGHUP keeps its default action (the process ends).
    with on_signals(component.reload, (signal.SIGHUP,)):
        await stop.wait()


def _settle_memory() -> None:
    """Once started: move everything allocated so far out of the garbage collector's
    view, and collect the young generation less often. A service allocates many short
    lived objects per request and few cycles; scanning the start-up heap again and
    again is pure cost."""
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GEN0_THRESHOLD, gen1, gen2)


def run_process(
    name: str, load: Callable[[], P], main: Callable[[P], Coroutine[Any, Any, int]]
) -> int:
    """A VaultMesh process: settings, JSON logs, ``main`` under uvloop; returns the exit code.

    2: the configuration is bad (``ConfigError``, at load or later); 1: a dependency
    stayed unavailable (``Unavailable``); otherwise what ``main`` returns.
    """
    try:
        settings = load()
    except ConfigError as exc:
        configure_logging(name)
        log.error(str(exc))
        return 2
    configure_logging(name, settings.level())
    try:
        return uvloop.run(main(settings))
    except Unavailable as exc:
        log.error(str(exc))
        return 1
    except ConfigError as exc:
        log.error(str(exc))
        return 2


def run_service(settings_cls: type[S], name: str, build_for: Callable[[S], Builder]) -> int:
    """Process entry point shared by every bus service's ``__main__``; returns the exit code."""

    async def main(settings: S) -> int:
        await serve(settings, name, build_for(settings))
        return 0

    return run_process(name, lambda: load_settings(settings_cls), main)
