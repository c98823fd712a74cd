"""``POST /api/agent/heartbeat``: the seed 000 agent contract, backed by a JetStream publish.

The answer is ``200 {"status": "ok"}`` only after the HEARTBEATS stream
acknowledged the heartbeat, so a 200 means it is durable. Heartbeats are
published in batches, one awaiting its ack at a time (batcher.py). Unknown
fields are ignored (the Heartbeat model's policy) and not forwarded.

This is the one hot path (every node, every interval): the gateway's HTTP
protocol (frontdoor.py) reads plain heartbeat posts itself and answers them
through ``HeartbeatIngest``, without the framework; the FastAPI route below
serves the rest (chunked bodies, ``Expect: 100-continue``, a query string) and
documents the endpoint in OpenAPI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from vaultmesh.services.gateway.auth import Authenticator, authenticator
from vaultmesh.services.gateway.bodies import dump_json, json_body_spec, parse_model
from vaultmesh.services.gateway.http_errors import error_responses, error_status
from vaultmesh.services.gateway.state import GatewayState, gateway_state
from vaultmesh.shared import subjects
from vaultmesh.shared.errors import PayloadTooLarge, Unavailable, VaultMeshError
from vaultmesh.shared.models.heartbeat import Heartbeat

PATH = "/api/agent/heartbeat"
_ENDPOINT = f"POST {PATH}"
_OK = b'{"status":"ok"}'
_INTERNAL = b'{"error":"internal error; see the gateway log"}'
log = logging.getLogger(__name__)

router = APIRouter(tags=["agent"])


class StatusOk(BaseModel):
    """The seed 000 success reply."""

    status: Literal["ok"]


def heartbeat_message(headers: Mapping[str, str], body: bytes) -> tuple[str, bytes]:
    """The subject and bus payload of a heartbeat body (raises 400/415/422 when invalid)."""
    beat = parse_model(body, headers.get("content-type"), Heartbeat)
    data = beat.model_dump(mode="json", exclude_none=True)
    # The node id as dumped: str() of a UUID in Python costs more than the dump.
    return subjects.heartbeat(data["node_id"]), dump_json(data)


def not_stored() -> Unavailable:
    """The error for a heartbeat the stream did not acknowledge (the agent retries)."""
    return Unavailable(
        f"stream {subjects.STREAM_HEARTBEATS} did not acknowledge the heartbeat; retry later"
    )


async def accept_heartbeat(state: GatewayState, headers: Mapping[str, str], body: bytes) -> None:
    """Validate (the caller checked the token), publish to HEARTBEATS, wait for the ack."""
    subject, data = heartbeat_message(headers, body)
    outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def settle(stored: bool) -> None:
        if not outcome.done():  # cancelled when the client went away
            outcome.set_result(stored)

    state.heartbeats.submit(subject, data, settle)
    if not await outcome:
        raise not_stored()


@router.post(
    PATH,
    response_model=StatusOk,
    responses=error_responses(400, 401, 413, 415, 422, 503),
    openapi_extra={**json_body_spec(Heartbeat), "security": [{"AgentToken": []}]},
    summary="Ingest one node heartbeat (seed 000 contract)",
)
async def heartbeat(request: Request) -> Response:
    """Validate a heartbeat, publish it to HEARTBEATS, answer once it is stored."""
    authenticator(request).check_agent(request.headers)
    await accept_heartbeat(gateway_state(request), request.headers, await request.body())
    return Response(_OK, media_type="application/json")


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole HTTP answer: status, JSON body, and any extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


STORED = Reply(200, _OK)
_FAILED = Reply(500, _INTERNAL)


class HeartbeatIngest:
    """Answers heartbeat posts whose body has already been read (see frontdoor.py).

    Same checks, errors and metrics as the FastAPI route above, without a task
    or a future per heartbeat: the checks run at once, the publish goes into
    the next batch (batcher.py), and the answer comes by callback. It never raises.
    """

    def __init__(self, auth: Authenticator, state: GatewayState) -> None:
        self.auth = auth
        self.state = state

    def receive(
        self, headers: Mapping[str, str], body: bytes, answer: Callable[[Reply], None]
    ) -> None:
        """Check the token, validate, publish; ``answer`` gets the reply (maybe at once)."""
        started = time.perf_counter()
        try:
            self.auth.check_agent(headers)
            subject, data = heartbeat_message(headers, body)
        except VaultMeshError as exc:
            self._reply(answer, self._refused(exc), started)
            return
        except Exception:
            log.exception("heartbeat ingest failed")
            self._reply(answer, _FAILED, started)
            return

        def done(stored: bool) -> None:
            if stored:
                self._reply(answer, STORED, started)
            else:
                self._reply(answer, self._refused(not_stored()), started)

        self.state.heartbeats.submit(subject, data, done)

    def _reply(self, answer: Callable[[Reply], None], reply: Reply, started: float) -> None:
        self.state.metrics.count_request(_ENDPOINT, reply.status, time.perf_counter() - started)
        answer(reply)

    def _refused(self, exc: VaultMeshError) -> Reply:
        status, extra = error_status(exc)
        if status < 500:
            source = "http" if isinstance(exc, PayloadTooLarge) else PATH
            self.state.metrics.count_bad_input(source, exc.code)
        headers = tuple((name.encode(), value.encode()) for name, value in extra.items())
        return Reply(status, orjson.dumps({"error": exc.message}), headers)
