"""The console's event form without JavaScript: ``POST /console/events`` over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_support import (
    ADMIN_TOKEN,
    Gateway,
    assert_error_shape,
    eventually,
    gateway_audit,
    running_gateway,
)
from vaultmesh.shared import subjects
from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.natsserver import NatsServer


@pytest.fixture
async def gateway(nats_server: NatsServer) -> AsyncIterator[Gateway]:
    async with running_gateway(nats_server.url) as gw:
        yield gw


@pytest.fixture
async def signed_in(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client() as client:
        reply = await client.post("/login", data={"token": ADMIN_TOKEN})
        assert reply.status_code == 303
        yield client


def own_origin(gateway: Gateway) -> dict[str, str]:
    """The ``Origin`` a browser sends for a form on the gateway's own pages."""
    return {"Origin": gateway.base_url}


def form(node: uuid.UUID | str, **fields: str) -> dict[str, Any]:
    return {
        "kind": "ack",
        "severity": "notice",
        "author": "night shift",
        "body": "looking at it",
        "node_id": str(node),
        **fields,
    }


async def test_a_form_post_stores_the_event_and_goes_back_to_the_node(
    gateway: Gateway, signed_in: httpx.AsyncClient
) -> None:
    node = uuid.uuid4()
    reply = await signed_in.post("/console/events", data=form(node), headers=own_origin(gateway))
    assert reply.status_code == 303
    assert reply.headers["location"] == f"/console?node={node}"
    stored = await gateway.nc.jetstream().get_last_msg(
        subjects.STREAM_EVENTS, subjects.event("ack", node)
    )
    event = EventEnvelope.model_validate_json(stored.data)
    assert (event.kind.value, event.severity.value, event.author, event.body) == (
        "ack",
        "notice",
        "night shift",
        "looking at it",
    )
    assert event.id_is_valid()

    async def audited() -> list[dict[str, Any]] | None:
        found = await gateway_audit(gateway.nc, "event")
        return [r for r in found if r["detail"].get("event_id") == event.id] or None

    (record,) = await eventually(audited, "the posted event's audit record")
    assert (record["principal"], record["detail"]["via"]) == ("admin-token-1", "session")


@pytest.mark.parametrize(
    "headers",
    [
        # A browser that sends only Sec-Fetch-Site (no Origin) is believed too.
        pytest.param({"Sec-Fetch-Site": "same-origin"}, id="fetch-only"),
        # What Chromium sends for a same-origin form post under Referrer-Policy: no-referrer.
        pytest.param({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, id="null-and-fetch"),
    ],
)
async def test_a_note_without_a_node_goes_back_to_the_console(
    gateway: Gateway, signed_in: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    reply = await signed_in.post("/console/events", data=form("", kind="note"), headers=headers)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/console"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        pytest.param({"Origin": "http://evil.example"}, "cross-site", id="other-origin"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, "cross-site", id="cross-site-fetch"),
        pytest.param({"Sec-Fetch-Site": "same-site"}, "cross-site", id="sibling-site-fetch"),
        pytest.param({"Origin": "null"}, "no same-site", id="null-origin"),
        pytest.param({"Sec-Fetch-Site": "none"}, "cross-site", id="fetch-none-only"),
        pytest.param({}, "no same-site", id="neither-header"),
    ],
)
async def test_posts_not_shown_to_be_same_site_are_refused(
    gateway: Gateway, signed_in: httpx.AsyncClient, headers: dict[str, str], problem: str
) -> None:
    before = gateway.bad_input("/console/events", "cross_site") + gateway.bad_input(
        "/console/events", "no_origin"
    )
    node = uuid.uuid4()
    reply = await signed_in.post("/console/events", data=form(node), headers=headers)
    assert problem in assert_error_shape(reply, 403)
    after = gateway.bad_input("/console/events", "cross_site") + gateway.bad_input(
        "/console/events", "no_origin"
    )
    assert after == before + 1
    stored = await gateway.nc.jetstream().stream_info(
        subjects.STREAM_EVENTS, subjects_filter=subjects.event("ack", node)
    )
    assert not stored.state.subjects  # nothing was posted


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param({"kind": "heartbeat"}, "produced by the system", id="system-kind"),
        pytest.param({"kind": "gossip"}, "kind", id="unknown-kind"),
        pytest.param({"node_id": "not-a-uuid"}, "node_id", id="bad-node"),
        pytest.param({"author": ""}, "author", id="no-author"),
    ],
)
async def test_bad_forms_are_refused_clearly(
    gateway: Gateway, signed_in: httpx.AsyncClient, fields: dict[str, str], problem: str
) -> None:
    data = form(uuid.uuid4(), **fields)
    reply = await signed_in.post("/console/events", data=data, headers=own_origin(gateway))
    assert problem in assert_error_shape(reply, 422)


async def test_without_a_session_the_browser_is_sent_to_sign_in(gateway: Gateway) -> None:
    async with gateway.client() as client:
        reply = await client.post(
            "/console/events", data=form(uuid.uuid4()), headers=own_origin(gateway)
        )
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/login?next=/console/events")
