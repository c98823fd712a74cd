"""The gateway app: routes, error shape, limits, metrics and OpenAPI, around the shared state.

``create_app(settings, auth=..., state=..., heartbeats=...)`` is called by the
gateway component (service.py), which starts and stops the state; the app has
no lifespan of its own. ``create_app(settings)`` alone gives an app without bus
state: enough for its OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from vaultmesh import __version__
from vaultmesh.services.gateway import api, ops
from vaultmesh.services.gateway.auth import login
from vaultmesh.services.gateway.auth.authenticator import Authenticator
from vaultmesh.services.gateway.bodies import INPUT_SUFFIX, bound_integers
from vaultmesh.services.gateway.config import GatewaySettings
from vaultmesh.services.gateway.http_errors import (
    ErrorBody,
    error_responses,
    install_error_handlers,
)
from vaultmesh.services.gateway.ingest import route as ingest
from vaultmesh.services.gateway.ingest.handler import HeartbeatHandler
from vaultmesh.services.gateway.live import sse
from vaultmesh.services.gateway.metrics import GatewayMetrics
from vaultmesh.services.gateway.middleware import BodyLimit, RequestMetrics
from vaultmesh.services.gateway.pages import mount_static
from vaultmesh.services.gateway.pages import router as pages_router
from vaultmesh.services.gateway.state import GatewayState
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.events import EventKind, NewEvent
from vaultmesh.shared.models.heartbeat import Heartbeat

SERVICE = "gateway"
# Request bodies parsed by the handlers themselves (see bodies.py), documented here.
INPUT_MODELS = (Heartbeat, NewEvent)
SECURITY_SCHEMES = {
    "AdminBearer": {"type": "http", "scheme": "bearer", "description": "An admin token"},
    "AdminSession": {"type": "apiKey", "in": "cookie", "name": "vaultmesh_session"},
    "AgentToken": {"type": "apiKey", "in": "header", "name": "X-Host-Token"},
}


def create_app(
    settings: GatewaySettings,
    *,
    auth: Authenticator | None = None,
    state: GatewayState | None = None,
    heartbeats: HeartbeatHandler | None = None,
) -> FastAPI:
    """Build the gateway app (raises ConfigError for bad tokens or keys)."""
    metrics = state.metrics if state is not None else GatewayMetrics(ServiceMetrics(SERVICE))
    app = FastAPI(
        title="VaultMesh gateway",
        version=__version__,
        description="The one HTTP door of VaultMesh Swarm: agent ingest, admin API, live events.",
        docs_url=None,  # Swagger/ReDoc pages load scripts from a CDN: not here
        redoc_url=None,
        # The gateway exports its own Prometheus metrics; FastAPI's OpenTelemetry hooks
        # would only cost time on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.auth = auth or Authenticator.from_settings(settings)
    app.state.metrics = metrics
    if state is not None:
        app.state.gateway = state
        app.state.fleet = state.fleet
    app.state.heartbeats = heartbeats
    for router in (ingest.router, api.router, sse.router, ops.router, login.router):
        app.include_router(router)
    app.include_router(pages_router)
    mount_static(app)
    install_error_handlers(app, metrics.base)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, metrics=metrics.base)
    app.add_middleware(RequestMetrics, metrics=metrics.base)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _restrict_postable_kinds(schemas: dict[str, Any]) -> None:
    """``POST /api/events`` refuses system kinds: say so in its body schema."""
    name = "PostableEventKind" + INPUT_SUFFIX
    schemas[name] = {
        "type": "string",
        "enum": [kind.value for kind in EventKind if kind not in api.SYSTEM_KINDS],
        "title": "PostableEventKind",
        "description": "Kinds a client may post (heartbeat and attention come from the system).",
    }
    new_event = schemas["NewEvent" + INPUT_SUFFIX]
    new_event["properties"]["kind"] = {"$ref": f"#/components/schemas/{name}"}


def _document_http_limits(schema: dict[str, Any]) -> None:
    """Any request can be refused by the HTTP limits (httpserver/limits.py): say so everywhere."""
    refusals = {str(status): spec for status, spec in error_responses(408, 431).items()}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].update(refusals)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the hand-parsed request bodies and the security schemes."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _, defs = models_json_schema(
        [(model, "validation") for model in INPUT_MODELS],
        ref_template="#/components/schemas/{model}" + INPUT_SUFFIX,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, definition in defs.get("$defs", {}).items():
        bound_integers(definition)
        schemas[name + INPUT_SUFFIX] = definition
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    _restrict_postable_kinds(schemas)
    _document_http_limits(schema)
    components["securitySchemes"] = SECURITY_SCHEMES
    app.openapi_schema = schema
    return schema
