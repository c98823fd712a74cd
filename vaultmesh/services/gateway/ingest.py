"""``POST /api/agent/heartbeat``: the seed 000 agent contract, backed by a JetStream publish.

The answer is ``200 {"status": "ok"}`` only after the HEARTBEATS stream
acknowledged the heartbeat, so a 200 means it is durable. Unknown fields are
ignored (the Heartbeat model's policy) and not forwarded.

This is the one hot path (every node, every interval), so ``HeartbeatFastPath``
serves it as plain ASGI before the framework's routing and middleware (see
``GatewayApp`` in app.py): same checks, errors and metrics as the FastAPI
route below, which documents it in OpenAPI.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

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
_JSON = (b"content-type", b"application/json")
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


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body (None if the client left); PayloadTooLarge past ``limit``."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class HeartbeatFastPath:
    """Serves ``POST /api/agent/heartbeat`` as plain ASGI, ahead of the framework."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    @staticmethod
    def matches(scope: Scope) -> bool:
        """Whether ``scope`` is a heartbeat post."""
        return bool(scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST")

    async def __call__(self, app_state: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one heartbeat post (``app_state`` is the app's ``state``)."""
        started = time.perf_counter()
        state: GatewayState = app_state.gateway
        try:
            status, body, headers = await self._serve(app_state.auth, state, scope, receive)
        except Exception:
            # The framework's error middleware is not in front of this path.
            log.exception("heartbeat ingest failed")
            status, body, headers = 500, _INTERNAL, [_JSON]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        state.metrics.count_request(_ENDPOINT, status, time.perf_counter() - started)

    async def _serve(
        self, auth: Authenticator, state: GatewayState, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        headers = Headers(scope=scope)
        try:
            auth.check_agent(headers)
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.limit:
                raise PayloadTooLarge(f"body is larger than the limit of {self.limit} bytes")
            body = await _read_body(receive, self.limit)
            if body is None:
                return 400, b"", []
            await accept_heartbeat(state, headers, body)
        except VaultMeshError as exc:
            status, extra = error_status(exc)
            source = "http" if isinstance(exc, PayloadTooLarge) else PATH
            if status < 500:
                state.metrics.count_bad_input(source, exc.code)
            payload = orjson.dumps({"error": exc.message})
            return status, payload, [_JSON, *((k.encode(), v.encode()) for k, v in extra.items())]
        return 200, _OK, [_JSON]
