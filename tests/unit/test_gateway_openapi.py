"""The published OpenAPI document: every route, every error as ``{"error": str}``."""

from __future__ import annotations

from typing import Any

import pytest

from vaultmesh.services.gateway.app import create_app
from vaultmesh.services.gateway.config import GatewaySettings

ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    settings = GatewaySettings(admin_tokens="unit-admin-token-0123456789", metrics_port=-1)
    document: dict[str, Any] = create_app(settings).openapi()
    return document


def test_every_contract_route_is_documented(schema: dict[str, Any]) -> None:
    operations = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert operations >= {
        ("POST", "/api/agent/heartbeat"),
        ("GET", "/api/nodes"),
        ("GET", "/api/nodes/{node_id}"),
        ("DELETE", "/api/nodes/{node_id}"),
        ("GET", "/api/nodes/{node_id}/history"),
        ("GET", "/api/fleet/counts"),
        ("GET", "/api/events"),
        ("POST", "/api/events"),
        ("GET", "/events"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
    }


def test_every_error_response_is_the_error_body(schema: dict[str, Any]) -> None:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                content = response["content"]["application/json"]["schema"]
                assert content == {"$ref": ERROR_REF}, (method, path, status)
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_hand_parsed_bodies_and_security_are_documented(schema: dict[str, Any]) -> None:
    heartbeat = schema["paths"]["/api/agent/heartbeat"]["post"]
    body = heartbeat["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Heartbeat-Input"}
    assert heartbeat["security"] == [{"AgentToken": []}]
    components = schema["components"]
    assert set(components["schemas"]["Heartbeat-Input"]["required"]) >= {"node_id", "timestamp"}
    kinds = components["schemas"]["PostableEventKind-Input"]["enum"]
    assert "heartbeat" not in kinds
    assert "note" in kinds
    assert set(components["securitySchemes"]) == {"AdminBearer", "AdminSession", "AgentToken"}
    nodes = schema["paths"]["/api/nodes"]["get"]
    assert {"AdminBearer": []} in nodes["security"]
