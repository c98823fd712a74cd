"""``POST /api/agent/heartbeat`` through FastAPI: the posts the front door does not serve.

Chunked bodies, ``Expect: 100-continue``, a query string, a body over the limit
(refused 413 by ``BodyLimit`` before this runs), or any post on a connection
uvicorn already serves, come here; the route reads the body and hands it to
the same ``HeartbeatHandler`` as the front door. It also documents the
endpoint in OpenAPI.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from vaultmesh.services.gateway.bodies import json_body_spec
from vaultmesh.services.gateway.http_errors import error_responses
from vaultmesh.services.gateway.ingest.contract import PATH, StatusOk
from vaultmesh.services.gateway.ingest.handler import HeartbeatHandler
from vaultmesh.shared.models.heartbeat import Heartbeat

router = APIRouter(tags=["agent"])


def heartbeat_handler(app: FastAPI) -> HeartbeatHandler:
    """The app's HeartbeatHandler (the front door serves with the same one)."""
    handler: HeartbeatHandler = app.state.heartbeats
    return handler


@router.post(
    PATH,
    response_model=StatusOk,
    responses=error_responses(400, 401, 413, 415, 422, 503),
    openapi_extra={**json_body_spec(Heartbeat), "security": [{"AgentToken": []}]},
    summary="Ingest one node heartbeat (seed 000 contract)",
)
async def heartbeat(request: Request) -> Response:
    """Validate a heartbeat, publish it to HEARTBEATS, answer once it is stored."""
    body = await request.body()
    reply = await heartbeat_handler(request.app).answer(request.headers, body)
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in reply.headers}
    return Response(
        reply.body, status_code=reply.status, headers=headers, media_type="application/json"
    )
