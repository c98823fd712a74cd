"""Property-based API fuzzing of the gateway from its own /openapi.json (schemathesis).

The gateway and fleet-state run for real (a real nats-server) in a background
thread, so the synchronous schemathesis/requests test can call them over
loopback. Every generated request — valid and invalid — must get no 5xx, a
status and body the schema documents, and errors in the ``{"error": ...}`` shape.
The number of examples is bounded so the run stays well under a minute.
(schemathesis' pytest plugin does not work with pytest 9 yet, so the test
drives its Hypothesis strategies directly.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.integration.test_gateway_support import ADMIN, AGENT, running_gateway
from vaultmesh.shared.natsserver import NatsServer

# About 13 operations x 2 modes x 12 examples: a few hundred requests in all.
EXAMPLES_PER_OPERATION = 12
# Invalid requests must be refused with one of these (413: a body beyond the size limit).
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                # 429: POST /login after too many refused tokens from this address.
                # 431: a head over the limit (a long query string, say).
                "expected-statuses": [
                    "400",
                    "401",
                    "404",
                    "405",
                    "413",
                    "415",
                    "422",
                    "429",
                    "431",
                ]
            }
        }
    }
)


class BackgroundGateway:
    """fleet-state + gateway in their own event loop on a thread."""

    def __init__(self, nats_url: str) -> None:
        self._nats_url = nats_url
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="gateway-under-fuzz", daemon=True)
        self.base_url = ""
        self.error: BaseException | None = None

    def __enter__(self) -> BackgroundGateway:
        self._thread.start()
        if not self._ready.wait(60) or self.error is not None:
            raise RuntimeError(f"gateway did not start: {self.error!r}")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by __enter__
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_gateway(self._nats_url) as gateway:
            self.base_url = gateway.base_url
            self._ready.set()
            await self._stop.wait()


@pytest.fixture(scope="module")
def live_gateway(nats_server: NatsServer) -> Iterator[BackgroundGateway]:
    with BackgroundGateway(nats_server.url) as gateway:
        yield gateway


def _assert_error_shape(response: Any) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str), body
    assert body["error"]


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        response = case.call_and_validate(headers={**ADMIN, **AGENT}, timeout=10)
        assert response.status_code < 500, response.text
        _assert_error_shape(response)

    check()


def test_gateway_api_fuzz(live_gateway: BackgroundGateway) -> None:
    schema = schemathesis.openapi.from_url(f"{live_gateway.base_url}/openapi.json", config=CONFIG)
    # /events is an endless stream: its behaviour is tested in test_gateway_events.
    operations = [result.ok() for result in schema.exclude(path="/events").get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode)
            except Unsatisfiable:
                # No parameters and no body: there is no invalid request to make.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:
                exc.add_note(f"while fuzzing {operation.label} ({mode.value})")
                raise
