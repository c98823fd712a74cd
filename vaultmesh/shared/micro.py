"""``nats.micro`` services that speak the VaultMesh envelope.

Two layers. The transport (``MicroService``) registers the service and its
endpoints, answers each request inline or in its own bounded task, and sends the
reply. An endpoint's *responder* turns (subject, body, format) into a reply
envelope: ``Endpoint`` gives the standard one (decode, validate a pydantic
model, call the handler, count bad input), and ``RawEndpoint`` lets a service
that must see every request, even one it cannot decode, bring its own (the vault
audits those too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service
from pydantic import BaseModel

from vaultmesh import __version__
from vaultmesh.shared import codec
from vaultmesh.shared.errors import BadRequest, Internal, VaultMeshError
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.runtime import Lifecycle
from vaultmesh.shared.validation import parse

log = logging.getLogger(__name__)
# The bad-input code counted for a message an endpoint's ``accepts`` refused.
REFUSED_REPLY = "foreign_reply"


P_co = TypeVar("P_co", covariant=True)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call(Generic[P_co]):
    """One decoded request as a handler sees it: ``payload`` is the validated request model."""

    subject: str
    payload: P_co
    fmt: codec.WireFormat


# A handler's result is encoded as the reply's ``data`` (a model, or plain JSON values).
Handler = Callable[[Call[P_co]], Awaitable[object]]
Reply = tuple[Any, VaultMeshError | None]
# (subject, raw body, format) -> (reply envelope, the error it carries or None)
Responder = Callable[[str, bytes, codec.WireFormat], Awaitable[Reply]]


class Endpoint:
    """A micro endpoint with the standard responder: name, subject, handler, request model.

    The handler gets a ``Call[model]``; without a model, a ``Call[object]`` of the decoded
    body. The overloads let mypy check that a handler expects its endpoint's model.
    """

    __slots__ = ("concurrent", "handler", "model", "name", "subject")

    @overload
    def __init__(
        self,
        name: str,
        subject: str,
        handler: Handler[M],
        model: type[M],
        *,
        concurrent: bool = ...,
    ) -> None: ...

    @overload
    def __init__(
        self, name: str, subject: str, handler: Handler[object], *, concurrent: bool = ...
    ) -> None: ...

    def __init__(
        self,
        name: str,
        subject: str,
        handler: Handler[Any],
        model: type[BaseModel] | None = None,
        *,
        concurrent: bool = False,
    ) -> None:
        self.name = name
        self.subject = subject
        self.handler = handler
        self.model = model
        # Run each request in its own task (bounded), for handlers that wait on I/O.
        self.concurrent = concurrent


@dataclass(frozen=True)
class RawEndpoint:
    """A micro endpoint whose own responder decodes, handles, counts and builds the envelope."""

    name: str
    subject: str
    respond: Responder
    # Requests that never wait are answered inline (the cheapest path); the rest in tasks.
    inline: Callable[[str], bool] = lambda _subject: False
    # (subject, reply subject) -> serve it? A refused message is dropped unanswered and counted.
    accepts: Callable[[str, str], bool] | None = None


def _reply_of(request: Request) -> str:
    """The reply subject: nats.micro's Request keeps it on the message it wraps, unexposed."""
    msg = getattr(request, "_msg", None)
    return str(getattr(msg, "reply", "") or "")


class MicroService(Lifecycle):
    """A ``nats.micro`` service whose endpoints speak the VaultMesh envelope."""

    def __init__(
        self,
        nc: Client,
        *,
        name: str,
        description: str,
        endpoints: Sequence[Endpoint | RawEndpoint],
        metrics: ServiceMetrics,
        queue_group: str,
        max_request_bytes: int = codec.DEFAULT_MAX_BYTES,
        max_in_flight: int = 256,
    ) -> None:
        self._nc = nc
        self._name = name
        self._description = description
        self._endpoints = [self._raw(endpoint) for endpoint in endpoints]
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
                    name=endpoint.name, subject=endpoint.subject, handler=self._dispatch(endpoint)
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

    # ---- transport -------------------------------------------------------------------

    def _dispatch(self, endpoint: RawEndpoint) -> Callable[[Request], Awaitable[None]]:
        async def handle(request: Request) -> None:
            if endpoint.accepts is not None and not endpoint.accepts(
                request.subject, _reply_of(request)
            ):
                self._refuse(endpoint)
                return
            if endpoint.inline(request.subject):
                await self._serve(endpoint, request)
                return
            await self._slots.acquire()
            task = asyncio.create_task(self._serve(endpoint, request))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

        return handle

    def _refuse(self, endpoint: RawEndpoint) -> None:
        self._metrics.count_bad_input(endpoint.name, REFUSED_REPLY)
        log.warning(
            "message dropped: its reply subject is not its sender's inbox",
            extra={"endpoint": endpoint.name},
        )

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _serve(self, endpoint: RawEndpoint, request: Request) -> None:
        fmt = codec.format_of(request.headers)
        body, error = await endpoint.respond(request.subject, request.data, fmt)
        try:
            data = codec.encode(body, fmt)
        except TypeError:
            log.exception("reply not encodable")
            error = Internal("internal error; see the service log")
            data = codec.encode(codec.failure(error), fmt)
        # JSON is the default: a JSON success reply needs no headers (cheaper to send).
        plain = error is None and fmt is codec.WireFormat.JSON
        headers = None if plain else codec.reply_headers(fmt, error)
        with contextlib.suppress(ValueError):  # a publish with no reply subject
            try:
                await request.respond(data, headers=headers)
            except NatsError as exc:
                log.warning("reply not sent", extra={"error_type": type(exc).__name__})

    # ---- the standard responder ------------------------------------------------------

    def _raw(self, endpoint: Endpoint | RawEndpoint) -> RawEndpoint:
        if isinstance(endpoint, RawEndpoint):
            return endpoint
        inline = not endpoint.concurrent
        return RawEndpoint(
            endpoint.name,
            endpoint.subject,
            lambda subject, data, fmt: self._respond(endpoint, subject, data, fmt),
            inline=lambda _subject: inline,
        )

    async def _respond(
        self, endpoint: Endpoint, subject: str, data: bytes, fmt: codec.WireFormat
    ) -> Reply:
        started = time.perf_counter()
        error: VaultMeshError | None = None
        try:
            body = codec.success(await endpoint.handler(self._call(endpoint, subject, data, fmt)))
        except VaultMeshError as exc:
            error = exc
            if exc.code == Internal.code:  # the service's own fault (say a corrupt log): log it
                log.error(
                    "handler failed",
                    extra={"endpoint": endpoint.name, "error_type": type(exc).__name__},
                    exc_info=exc,
                )
        except Exception:
            log.exception("handler failed", extra={"endpoint": endpoint.name})
            error = Internal("internal error; see the service log")
        if error is not None:
            body = codec.failure(error)
            if isinstance(error, BadRequest):
                self._metrics.count_bad_input(endpoint.name, error.code)
        self._count(endpoint.name, error, started)
        return body, error

    def _call(
        self, endpoint: Endpoint, subject: str, data: bytes, fmt: codec.WireFormat
    ) -> Call[object]:
        payload = codec.decode(data, fmt, self._max_bytes)
        if endpoint.model is not None:
            payload = parse(endpoint.model, payload)
        return Call(subject, payload, fmt)

    def _count(self, name: str, error: VaultMeshError | None, started: float) -> None:
        outcome = "ok" if error is None else error.code
        self._metrics.count_request(name, outcome, time.perf_counter() - started)
