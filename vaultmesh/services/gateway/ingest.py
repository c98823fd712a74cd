"""``POST /api/agent/heartbeat``: the seed 000 agent contract, backed by a JetStream publish.

The answer is ``200 {"status": "ok"}`` only after the HEARTBEATS stream
acknowledged the heartbeat, so a 200 means it is durable. Unknown fields are
ignored (the Heartbeat model's policy) and not forwarded.

This is the one hot path (every node, every interval): the gateway's HTTP
protocol (frontdoor.py) reads plain heartbeat posts itself and answers them
through ``HeartbeatIngest``, without the framework; the FastAPI route below
serves the rest (chunked bodies, ``Expect: 100-continue``, a query string) and
documents the endpoint in OpenAPI.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.datastructures import Headers

from vaultmesh.services.gateway.auth import Authenticator, authenticator
from vaultmesh.services.gateway.bodies import json_body_spec, parse_model, to_json
from vaultmesh.services.gateway.http_errors import error_responses, error_status
from vaultmesh.services.gateway.state import GatewayState, gateway_state
from vaultmesh.shared import subjects
from vaultmesh.shared.errors import PayloadTooLarge, VaultMeshError
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


async def accept_heartbeat(state: GatewayState, headers: Headers, body: bytes) -> None:
    """Validate (the caller checked the token), publish to HEARTBEATS, wait for the ack."""
    beat = parse_model(body, headers.get("content-type"), Heartbeat)
    await state.publisher.publish(
        subjects.heartbeat(beat.node_id),
        to_json(beat, exclude_none=True),
        stream=subjects.STREAM_HEARTBEATS,
    )
    state.metrics.count_published(subjects.STREAM_HEARTBEATS)


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


_STORED = Reply(200, _OK)
_FAILED = Reply(500, _INTERNAL)


class HeartbeatIngest:
    """Answers heartbeat posts whose body has already been read (see frontdoor.py).

    Same checks, errors and metrics as the FastAPI route above; it never raises.
    """

    def __init__(self, auth: Authenticator, state: GatewayState) -> None:
        self.auth = auth
        self.state = state

    async def answer(self, headers: Headers, body: bytes) -> Reply:
        """Check the token, validate, publish, and say how it went."""
        started = time.perf_counter()
        try:
            self.auth.check_agent(headers)
            await accept_heartbeat(self.state, headers, body)
            reply = _STORED
        except VaultMeshError as exc:
            reply = self._refused(exc)
        except Exception:
            log.exception("heartbeat ingest failed")
            reply = _FAILED
        self.state.metrics.count_request(_ENDPOINT, reply.status, time.perf_counter() - started)
        return reply

    def _refused(self, exc: VaultMeshError) -> Reply:
        status, extra = error_status(exc)
        if status < 500:
            source = "http" if isinstance(exc, PayloadTooLarge) else PATH
            self.state.metrics.count_bad_input(source, exc.code)
        headers = tuple((name.encode(), value.encode()) for name, value in extra.items())
        return Reply(status, orjson.dumps({"error": exc.message}), headers)
