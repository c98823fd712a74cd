"""The shared micro-service layer against a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgpack
import pytest
from nats.aio.client import Client

from vaultmesh.shared import bus, codec
from vaultmesh.shared.errors import BadRequest, Conflict, Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.micro import Call, Endpoint, MicroService
from vaultmesh.shared.models.common import StrictModel


class Echo(StrictModel):
    text: str
    times: int = 1


async def _echo(call: Call) -> dict[str, str]:
    assert isinstance(call.payload, Echo)
    return {"echo": call.payload.text * call.payload.times}


async def _conflict(_call: Call) -> None:
    raise Conflict("version is 3, not 2")


async def _boom(_call: Call) -> None:
    raise RuntimeError("secret-internal-detail")


@pytest.fixture
async def service(nc: Client) -> AsyncIterator[tuple[MicroService, ServiceMetrics]]:
    metrics = ServiceMetrics("test")
    svc = MicroService(
        nc,
        name="testsvc",
        description="test",
        endpoints=[
            Endpoint("echo", "t.echo", _echo, Echo),
            Endpoint("conflict", "t.conflict", _conflict),
            Endpoint("boom", "t.boom", _boom, concurrent=True),
        ],
        metrics=metrics,
        queue_group="t",
        max_request_bytes=1024,
    )
    await svc.start()
    await svc.start()  # idempotent
    yield svc, metrics
    await svc.stop()
    await svc.stop()


async def test_json_round_trip(nc: Client, service: object) -> None:
    assert await bus.request(nc, "t.echo", {"text": "ab", "times": 2}) == {"echo": "abab"}


async def test_msgpack_round_trip(nc: Client, service: object) -> None:
    msg = await nc.request(
        "t.echo",
        msgpack.packb({"text": "x"}),
        headers={codec.CONTENT_TYPE: codec.MSGPACK_TYPE},
        timeout=2,
    )
    assert msg.headers is not None
    assert msg.headers[codec.CONTENT_TYPE] == codec.MSGPACK_TYPE
    assert msgpack.unpackb(msg.data) == {"status": "success", "data": {"echo": "x"}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "bad_request"),
        (b'{"text": 5}', "bad_request"),
        (b'{"text": "a", "extra": 1}', "bad_request"),
        (b"[1, 2]", "bad_request"),
        (b'{"text": "' + b"a" * 2000 + b'"}', "payload_too_large"),
    ],
)
async def test_bad_input_is_a_clear_error_and_counted(
    nc: Client, service: tuple[MicroService, ServiceMetrics], body: bytes, code: str
) -> None:
    _svc, metrics = service
    msg = await nc.request("t.echo", body, timeout=2)
    reply = codec.decode(msg.data)
    assert reply["status"] == "error"
    assert reply["code"] == code
    assert msg.headers is not None
    assert codec.ERROR_CODE_HEADER in msg.headers
    value = metrics.registry.get_sample_value(
        "vaultmesh_bad_input_total", {"service": "test", "source": "echo", "code": code}
    )
    assert value == 1
    # and the service still answers
    assert await bus.request(nc, "t.echo", {"text": "ok"}) == {"echo": "ok"}


async def test_typed_errors_cross_the_bus(nc: Client, service: object) -> None:
    with pytest.raises(Conflict, match="version is 3"):
        await bus.request(nc, "t.conflict")


async def test_internal_errors_hide_details(nc: Client, service: object) -> None:
    msg = await nc.request("t.boom", b"", timeout=2)
    reply = codec.decode(msg.data)
    assert reply["code"] == "internal"
    assert "secret-internal-detail" not in msg.data.decode()


async def test_no_responders_is_unavailable(nc: Client) -> None:
    with pytest.raises(Unavailable, match="no service"):
        await bus.request(nc, "t.nobody", timeout=1)


async def test_connect_to_dead_server_fails_fast() -> None:
    from vaultmesh.shared.config import BusSettings
    from vaultmesh.shared.natsserver import free_port

    settings = BusSettings(
        nats_url=f"nats://127.0.0.1:{free_port()}",
        nats_connect_attempts=2,
        nats_reconnect_wait=0.1,
        nats_connect_timeout=0.5,
    )
    import time

    started = time.monotonic()
    with pytest.raises(Unavailable, match="cannot connect"):
        await bus.connect(settings, "t")
    assert time.monotonic() - started < 10


def test_unwrap_rejects_non_envelopes() -> None:
    with pytest.raises(BadRequest):
        codec.unwrap([1])
