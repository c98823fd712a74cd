"""Turning stream messages into registry updates and working-set events (no NATS here).

``HeartbeatIngest.handle`` is the per-heartbeat hot path: one size check, one
``model_validate_json``, one subject check, one in-place registry update. Bad
messages are rejected, counted and logged (rate-limited, without their
content) and never raise into the stream reader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pydantic import ValidationError

from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock, SystemClock
from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.models.heartbeat import Heartbeat
from vaultmesh.shared.validation import describe

from .errors import NodeMismatch
from .events import EventWindow
from .metrics import EVENTS_SOURCE, HEARTBEAT_SOURCE, FleetMetrics
from .registry import Change, Registry
from .tombstones import Tombstones

log = logging.getLogger(__name__)

_HEARTBEAT_PREFIX = len(subjects.heartbeat("x")) - 1
_LOG_EVERY_S = 10.0
_VALIDATE_HEARTBEAT = Heartbeat.__pydantic_validator__.validate_json


class RejectLog:
    """Logs rejected inputs at most once per code every few seconds (bad input can be a flood)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, source: str, code: str, detail: str, **fields: object) -> None:
        """Log one rejection unless this code was logged moments ago."""
        key = f"{source}:{code}"
        now = time.monotonic()
        if now - self._last.get(key, -_LOG_EVERY_S) < _LOG_EVERY_S:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        log.warning(
            "rejected %s message",
            source,
            extra={"code": code, "detail": detail, "suppressed": suppressed, **fields},
        )


class HeartbeatIngest:
    """Validates heartbeats from the HEARTBEATS stream and applies them to the registry."""

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        metrics: FleetMetrics,
        on_change: Callable[[Change], None],
        max_bytes: int,
        tombstones: Tombstones | None = None,
    ) -> None:
        self._registry = registry
        self._tombstones = tombstones if tombstones is not None else Tombstones()
        # The wall clock without building a datetime per heartbeat; other clocks as given.
        self._now: Callable[[], float] = (
            time.time if isinstance(clock, SystemClock) else lambda: clock.now().timestamp()
        )
        self._metrics = metrics
        self._on_change = on_change
        self._max_bytes = max_bytes
        self._log = RejectLog()

    def handle(self, subject: str, data: bytes, seq: int, stored_ns: int) -> None:
        """Apply one stream message; ``stored_ns`` is when the stream stored it (its arrival)."""
        if len(data) > self._max_bytes:
            self._reject("payload_too_large", f"{len(data)} bytes; limit {self._max_bytes}")
            return
        try:
            # Heartbeat.model_validate_json without its Python wrapper (this runs per message).
            hb: Heartbeat = _VALIDATE_HEARTBEAT(data)
        except ValidationError as exc:
            self._reject("bad_request", describe(exc))
            return
        node_id = subject[_HEARTBEAT_PREFIX:]
        arrival = stored_ns * 1e-9
        node = self._registry.get(node_id)
        if node is None:
            if node_id != str(hb.node_id):
                self._reject(NodeMismatch.code, "subject node id differs from body node_id")
                return
            rev = self._tombstones.revision(node_id)
            if not self._tombstones.admits(node_id, seq):
                return  # a removed node's old heartbeat (replayed): it stays removed
            change: Change | None = self._registry.register(node_id, hb, arrival, self._now(), rev)
        else:
            # A registered token is canonical already: comparing the digits is enough (and
            # cheaper than formatting the UUID on every heartbeat).
            if hb.node_id.hex != node_id.replace("-", ""):
                self._reject(NodeMismatch.code, "subject node id differs from body node_id")
                return
            change = self._registry.update(node, hb, arrival, self._now())
        self._metrics.heartbeats_accepted += 1
        if change is not None:
            self._on_change(change)

    def _reject(self, code: str, detail: str) -> None:
        self._metrics.reject(HEARTBEAT_SOURCE, code)
        self._log.warn(HEARTBEAT_SOURCE, code, detail)


class EventIngest:
    """Adds valid EventEnvelopes from the EVENTS stream to the working set; skips the rest."""

    def __init__(self, window: EventWindow, metrics: FleetMetrics, max_bytes: int) -> None:
        self._window = window
        self._metrics = metrics
        self._max_bytes = max_bytes
        self._log = RejectLog()

    def handle(self, _subject: str, data: bytes, sequence: int, _stored_ns: int) -> None:
        """Apply one stream message with its stream ``sequence``."""
        if len(data) > self._max_bytes:
            self._skip("payload_too_large", f"{len(data)} bytes", sequence)
            return
        try:
            event = EventEnvelope.model_validate_json(data)
        except ValidationError as exc:
            self._skip("bad_request", describe(exc), sequence)
            return
        if not event.id_is_valid():
            self._skip("bad_event_id", "id does not match the canonical bytes", sequence)
            return
        self._window.add(sequence, event)

    def _skip(self, code: str, detail: str, sequence: int) -> None:
        self._metrics.reject(EVENTS_SOURCE, code)
        self._log.warn(EVENTS_SOURCE, code, detail, sequence=sequence)
