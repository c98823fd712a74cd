"""Operator endpoints, open by design: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from vaultmesh.services.gateway.http_errors import error_responses
from vaultmesh.services.gateway.state import gateway_state
from vaultmesh.shared.errors import Unavailable, VaultMeshError

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """The process is alive and has not been without its bus for long."""

    status: Literal["ok"]


class Ready(BaseModel):
    """The gateway can serve: the bus is connected and fleet-state answers."""

    status: Literal["ready"]


@router.get("/healthz", response_model=Health, responses=error_responses(503))
async def healthz(request: Request) -> Health:
    """Liveness: the process answers HTTP and has had its bus within the grace period."""
    state = gateway_state(request)
    grace = state.settings.health_bus_grace_s
    down = state.bus_watch.down_for()
    if down > grace:
        raise Unavailable(
            f"no NATS connection for {down:.0f}s (more than VAULTMESH_HEALTH_BUS_GRACE_S={grace:g})"
        )
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=error_responses(503))
async def readyz(request: Request) -> Ready:
    """Readiness: NATS connected and fleet-state answering a counts request."""
    state = gateway_state(request)
    if not state.nc.is_connected:
        raise Unavailable("not connected to NATS")
    try:
        await state.fleet.counts(timeout=state.settings.ready_timeout_s)
    except VaultMeshError as exc:
        raise Unavailable(f"fleet-state is not answering: {exc.message}") from None
    return Ready(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the gateway's own registry."""
    registry = gateway_state(request).metrics.base.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
