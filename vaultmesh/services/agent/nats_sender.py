"""Heartbeats over NATS: a JetStream publish to ``fleet.heartbeat.<node_id>``.

The publish waits for the stream's acknowledgement, so a heartbeat counts as
delivered only once stream HEARTBEATS has stored it. The agent does not create
streams: it is a least-privilege edge client, and creating one with its local
defaults could shadow the cluster's replicated configuration.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError

from vaultmesh.services.agent.errors import SendError
from vaultmesh.shared import bus, codec, subjects
from vaultmesh.shared.config import BusSettings
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.models.heartbeat import Heartbeat

_CLOSE_TIMEOUT = 0.5


class NatsSender:
    """Publishes heartbeats to JetStream; connects lazily and keeps the connection."""

    def __init__(self, settings: BusSettings, name: str, timeout: float) -> None:
        self._settings = settings
        self._name = name
        self._timeout = timeout
        self._nc: Client | None = None

    @property
    def target(self) -> str:
        """The NATS server URL(s)."""
        return self._settings.nats_url

    async def send(self, heartbeat: Heartbeat) -> None:
        """Publish one heartbeat and wait for the stream's ack."""
        subject = subjects.heartbeat(heartbeat.node_id)
        js = (await self._connection()).jetstream(timeout=self._timeout)
        body = heartbeat.model_dump_json(exclude_none=True).encode()
        try:
            await js.publish(subject, body, timeout=self._timeout, headers=_HEADERS)
        except (NoRespondersError, NoStreamResponseError):
            raise SendError(
                f"no JetStream stream stores {subject}; is fleet-state (or `vaultmesh up`) running?"
            ) from None
        except (NatsTimeoutError, TimeoutError):
            raise SendError(f"no JetStream ack for {subject} within {self._timeout:g}s") from None
        except NatsError as exc:
            raise SendError(f"publish to {subject} failed: {type(exc).__name__}") from None

    async def _connection(self) -> Client:
        if self._nc is None or self._nc.is_closed:
            try:
                self._nc = await bus.connect(self._settings, self._name)
            except Unavailable as exc:
                raise SendError(str(exc)) from None
        return self._nc

    async def close(self) -> None:
        """Close the connection without a long drain (shutdown must be quick)."""
        nc, self._nc = self._nc, None
        if nc is None or nc.is_closed:
            return
        with contextlib.suppress(NatsError, TimeoutError, OSError):
            await asyncio.wait_for(bus.close_now(nc), _CLOSE_TIMEOUT)


_HEADERS = {codec.CONTENT_TYPE: codec.JSON_TYPE}
