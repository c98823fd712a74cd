"""The admin JSON API: fleet views asked of fleet-state, and the events of the comms layer.

Reads are bus requests to fleet-state (the gateway keeps no fleet state);
``POST /api/events`` is a JetStream publish to EVENTS answered 201 after the ack;
``DELETE /api/nodes/{id}`` asks fleet-state to remove a node, and is audited.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from vaultmesh.services.gateway.auth.authenticator import Principal, require_admin
from vaultmesh.services.gateway.bodies import json_body_spec, read_model
from vaultmesh.services.gateway.errors import InvalidInput
from vaultmesh.services.gateway.http_errors import error_responses
from vaultmesh.services.gateway.state import GatewayState, gateway_state
from vaultmesh.shared import subjects
from vaultmesh.shared.models.audit import Outcome
from vaultmesh.shared.models.events import (
    EventEnvelope,
    EventKind,
    EventList,
    EventsQuery,
    NewEvent,
)
from vaultmesh.shared.models.fleet import (
    FleetCounts,
    HeartbeatHistory,
    NodeList,
    NodeRemoval,
    NodeStatus,
    NodeView,
)

# Produced by the system itself; a client posting them would forge telemetry or verdicts.
SYSTEM_KINDS = frozenset({EventKind.HEARTBEAT, EventKind.ATTENTION, EventKind.REMOVAL})
ADMIN_SECURITY: dict[str, Any] = {"security": [{"AdminBearer": []}, {"AdminSession": []}]}
READ_ERRORS = error_responses(401, 422, 502, 503)

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)], tags=["admin"])
NodeId = Annotated[UUID, Path(description="The node's UUID")]


@router.get("/nodes", response_model=NodeList, responses=READ_ERRORS, openapi_extra=ADMIN_SECURITY)
async def list_nodes(
    request: Request,
    status: NodeStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> NodeList:
    """Every node fleet-state knows, optionally only those with ``status``."""
    return await gateway_state(request).fleet.list_nodes(status, limit, offset)


@router.get(
    "/nodes/{node_id}",
    response_model=NodeView,
    responses={**READ_ERRORS, **error_responses(404)},
    openapi_extra=ADMIN_SECURITY,
)
async def get_node(request: Request, node_id: NodeId) -> NodeView:
    """One node."""
    return await gateway_state(request).fleet.get_node(node_id)


@router.delete(
    "/nodes/{node_id}",
    response_model=NodeRemoval,
    responses={**READ_ERRORS, **error_responses(404)},
    openapi_extra=ADMIN_SECURITY,
)
async def delete_node(
    request: Request, node_id: NodeId, principal: Annotated[Principal, Depends(require_admin)]
) -> NodeRemoval:
    """Remove a node from the registry (its heartbeat history ages out of the stream).

    A node that sends a heartbeat after this registers again, as a new node.
    """
    state = gateway_state(request)
    removal = await state.fleet.delete_node(node_id, principal.name)
    state.audit.record(
        "node_delete",
        principal.name,
        Outcome.ALLOWED,
        node_id=str(node_id),
        hostname=removal.hostname,
        via=principal.method,
    )
    return removal


@router.get(
    "/nodes/{node_id}/history",
    response_model=HeartbeatHistory,
    responses={**READ_ERRORS, **error_responses(404)},
    openapi_extra=ADMIN_SECURITY,
)
async def node_history(
    request: Request, node_id: NodeId, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> HeartbeatHistory:
    """A node's recent heartbeats, newest first."""
    return await gateway_state(request).fleet.history(node_id, limit)


@router.get(
    "/fleet/counts", response_model=FleetCounts, responses=READ_ERRORS, openapi_extra=ADMIN_SECURITY
)
async def fleet_counts(request: Request) -> FleetCounts:
    """Fleet KPIs: total, healthy, attention, critical."""
    return await gateway_state(request).fleet.counts()


@router.get(
    "/events", response_model=EventList, responses=READ_ERRORS, openapi_extra=ADMIN_SECURITY
)
async def list_events(
    request: Request,
    since: AwareDatetime | None = None,
    kind: EventKind | None = None,
    node_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventList:
    """Recent events, newest first, with their EVENTS stream sequences."""
    query = EventsQuery(since=since, kind=kind, node_id=node_id, limit=limit)
    return await gateway_state(request).fleet.events(query)


@router.post(
    "/events",
    status_code=201,
    response_model=EventEnvelope,
    responses=error_responses(400, 401, 413, 415, 422, 503),
    openapi_extra={**json_body_spec(NewEvent), **ADMIN_SECURITY},
)
async def post_event(
    request: Request, principal: Annotated[Principal, Depends(require_admin)]
) -> Response:
    """Publish a new event; answers with the stored envelope once EVENTS acknowledged it."""
    new = await read_model(request, NewEvent)
    _envelope, body = await publish_event(gateway_state(request), new, principal)
    return Response(body, status_code=201, media_type="application/json")


async def publish_event(
    state: GatewayState, new: NewEvent, principal: Principal
) -> tuple[EventEnvelope, bytes]:
    """Stamp ``new``, store it in EVENTS (acknowledged) and audit who posted it."""
    if new.kind in SYSTEM_KINDS:
        raise InvalidInput(
            f"kind {new.kind.value!r} is produced by the system and cannot be posted"
        )
    envelope = EventEnvelope.create(**new.model_dump(), ts=state.clock.now())
    body = envelope.model_dump_json().encode()
    await state.publisher.publish(
        subjects.event(envelope.kind.value, envelope.node_id),
        body,
        stream=subjects.STREAM_EVENTS,
        msg_id=envelope.id,
    )
    state.metrics.count_published(subjects.STREAM_EVENTS)
    state.audit.record(
        "event",
        principal.name,
        Outcome.ALLOWED,
        kind=envelope.kind.value,
        node_id=str(envelope.node_id) if envelope.node_id else None,
        event_id=envelope.id,
        via=principal.method,
    )
    return envelope, body
