"""What a heartbeat post means, once, for both paths: authenticate, validate, submit, answer.

The front door (frontdoor.py) and the FastAPI route (route.py) both hand a
post's headers and whole body to ``HeartbeatHandler.receive``, so they give the
same answers and count the same bad input; they cannot drift apart.

* authenticate: the agent token (or open ingest), before the body is parsed;
* validate: the body as a ``Heartbeat`` (415/400/422, bodies.py), normalised
  (unknown fields dropped);
* submit: into the next batch to HEARTBEATS (batcher.py);
* answer: ``200 {"status":"ok"}`` once the stream's ack covers it, 503 when it
  does not; an error as ``{"error": ...}``, counted in
  ``vaultmesh_bad_input_total{source="/api/agent/heartbeat"}`` when it is the
  caller's.

The answer comes by callback, without a task or a future per heartbeat (the
front door's hot path); ``answer`` wraps it in a future for the route. The
request itself (``vaultmesh_requests_total``) is counted by whoever carried it:
the front door, or the ``RequestMetrics`` middleware on the ASGI path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import orjson

from vaultmesh.services.gateway.auth.authenticator import Authenticator
from vaultmesh.services.gateway.bodies import dump_json, parse_model
from vaultmesh.services.gateway.http_errors import error_status
from vaultmesh.services.gateway.httpserver.answers import Reply
from vaultmesh.services.gateway.ingest.contract import OK_BODY, PATH
from vaultmesh.services.gateway.state import GatewayState
from vaultmesh.shared import subjects
from vaultmesh.shared.errors import Unavailable, VaultMeshError
from vaultmesh.shared.models.heartbeat import Heartbeat

log = logging.getLogger(__name__)

STORED = Reply(200, OK_BODY)
FAILED = Reply(500, b'{"error":"internal error; see the gateway log"}')
Answer = Callable[[Reply], None]


def heartbeat_message(headers: Mapping[str, str], body: bytes) -> tuple[str, bytes]:
    """The subject and bus payload of a heartbeat body (raises 400/415/422 when invalid)."""
    beat = parse_model(body, headers.get("content-type"), Heartbeat)
    data = beat.model_dump(mode="json", exclude_none=True)
    # The node id as dumped: str() of a UUID in Python costs more than the dump.
    return subjects.heartbeat(data["node_id"]), dump_json(data)


def not_stored() -> Unavailable:
    """The error for a heartbeat the stream did not acknowledge (the agent retries)."""
    return Unavailable(
        f"stream {subjects.STREAM_HEARTBEATS} did not acknowledge the heartbeat; retry later"
    )


class HeartbeatHandler:
    """Answers heartbeat posts whose body has been read whole; one per app."""

    def __init__(self, auth: Authenticator, state: GatewayState) -> None:
        self.auth = auth
        self.state = state

    def receive(self, headers: Mapping[str, str], body: bytes, answer: Answer) -> None:
        """Check the token, validate, publish; ``answer`` gets the reply (maybe at once).

        It never raises: a failure is answered 500 and logged.
        """
        try:
            self.auth.check_agent(headers)
            subject, data = heartbeat_message(headers, body)
        except VaultMeshError as exc:
            answer(self._refused(exc))
            return
        except Exception:
            log.exception("heartbeat ingest failed")
            answer(FAILED)
            return

        def done(stored: bool) -> None:
            answer(STORED if stored else self._refused(not_stored()))

        self.state.heartbeats.submit(subject, data, done)

    async def answer(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """``receive`` for a caller that awaits the reply (the FastAPI route)."""
        outcome: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def settle(reply: Reply) -> None:
            if not outcome.done():  # cancelled when the client went away
                outcome.set_result(reply)

        self.receive(headers, body, settle)
        return await outcome

    def _refused(self, exc: VaultMeshError) -> Reply:
        status, extra = error_status(exc)
        if status < 500:
            self.state.metrics.count_bad_input(PATH, exc.code)
        headers = tuple((name.encode(), value.encode()) for name, value in extra.items())
        return Reply(status, orjson.dumps({"error": exc.message}), headers)
