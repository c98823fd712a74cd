"""The vault's ``nats.micro`` service: one endpoint on ``vault.*.*`` (a bus adapter).

Reads that never wait (SQLite ``get``/``list``/``status`` in best-effort audit
mode) are answered inline in the subscription callback, the cheapest path;
everything that may wait (writes, the KV backend, fail-closed audit) runs in its
own task, at most ``max_in_flight`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service

from vaultmesh import __version__
from vaultmesh.shared import codec, subjects
from vaultmesh.shared.errors import Internal, VaultMeshError

log = logging.getLogger(__name__)

Reply = tuple[dict[str, Any], VaultMeshError | None]
Handle = Callable[[str, bytes, codec.WireFormat], Awaitable[Reply]]
DESCRIPTION = "VaultMesh vault: encrypted secrets (vault.<principal>.<op>)"


class VaultEndpoint:
    """Registers the micro service and answers every request with an envelope."""

    def __init__(
        self,
        nc: Client,
        handle: Handle,
        *,
        inline_ops: frozenset[str] = frozenset(),
        max_in_flight: int = 256,
    ) -> None:
        self._nc = nc
        self._handle = handle
        self._inline = inline_ops
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._service: Service | None = None

    async def start(self) -> None:
        """Register the service and its endpoint (idempotent)."""
        if self._service is not None:
            return
        self._service = await add_service(
            self._nc,
            name=subjects.SERVICE_VAULT,
            version=__version__,
            description=DESCRIPTION,
            queue_group=subjects.QUEUE_VAULT,
        )
        await self._service.add_endpoint(
            EndpointConfig(name="vault", subject=subjects.VAULT_ALL, handler=self._on_request)
        )
        # Ready means subscribed at the server: without a flush a first request can race the SUB.
        await self._nc.flush()

    async def stop(self) -> None:
        """Stop taking requests and let those in flight finish (idempotent)."""
        service, self._service = self._service, None
        if service is None:
            return
        await service.stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    async def _on_request(self, request: Request) -> None:
        if request.subject.rpartition(".")[2] in self._inline:
            await self._serve(request)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._serve(request))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _serve(self, request: Request) -> None:
        fmt = codec.format_of(request.headers)
        body, error = await self._handle(request.subject, request.data, fmt)
        try:
            data = codec.encode(body, fmt)
        except TypeError:
            log.error("reply not encodable")
            error = Internal("internal error; see the service log")
            data = codec.encode(codec.failure(error), fmt)
        # JSON is the default: a JSON success reply needs no headers (cheaper to send).
        plain = error is None and fmt is codec.WireFormat.JSON
        headers = None if plain else codec.reply_headers(fmt, error)
        with contextlib.suppress(ValueError):  # a publish without a reply subject
            try:
                await request.respond(data, headers=headers)
            except NatsError as exc:
                log.warning("reply not sent", extra={"error": type(exc).__name__})
