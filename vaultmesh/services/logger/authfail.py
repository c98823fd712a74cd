"""Failed NATS logins as audit records: what the server's advisory says, at a bounded rate.

nats-server publishes ``io.nats.server.advisory.v1.client_disconnect`` on
``$SYS.SERVER.<id>.CLIENT.AUTH.ERR`` (system account) for every client whose
credentials it refused. Each becomes one audit record ``audit.logger.nats_auth_error``:
who it claimed to be (``principal``), from where, on which server, and why. The
advisory carries no credential, so none can reach the record. A storm of failed
logins is not a storm of records: at most ``burst`` records per ``window_s``; the
ones held back are counted and reported in the next record (``detail.suppressed``).
Permission violations of connected clients have no advisory in nats-server 2.15
(tried): the server logs them, and each VaultMesh process logs and counts its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vaultmesh.shared.clock import Clock
from vaultmesh.shared.models.audit import AuditRecord, Outcome
from vaultmesh.shared.models.common import Severity

SERVICE = "logger"
ACTION = "nats_auth_error"
_TEXT = 128  # longest text kept from an advisory field


def _text(value: Any) -> str:
    return str(value)[:_TEXT] if value is not None else ""


def auth_error_record(advisory: dict[str, Any], clock: Clock, suppressed: int) -> AuditRecord:
    """The audit record for one auth-failure advisory (``ValueError`` if it is not one)."""
    client = advisory.get("client")
    if not isinstance(client, dict) or not isinstance(advisory.get("id"), str):
        raise ValueError("not an auth-failure advisory")
    server = advisory.get("server")
    detail: dict[str, Any] = {
        "host": _text(client.get("host")),
        "account": _text(client.get("acc")),
        "client": f"{_text(client.get('lang'))} {_text(client.get('ver'))}".strip(),
        "server": _text(server.get("name")) if isinstance(server, dict) else "",
        "reason": _text(advisory.get("reason")),
        "at": _text(advisory.get("timestamp")),
    }
    if suppressed:
        detail["suppressed"] = suppressed
    return AuditRecord(
        ts=clock.now(),
        id=f"nats-auth-{_text(advisory['id'])[:40]}",
        service=SERVICE,
        action=ACTION,
        principal=_text(client.get("user"))[:128],
        outcome=Outcome.DENIED,
        severity=Severity.WARNING,
        code="authorization_violation",
        detail=detail,
    )


@dataclass
class Throttle:
    """At most ``burst`` records per ``window_s``; counts what it holds back."""

    clock: Clock
    burst: int = 20
    window_s: float = 10.0
    suppressed: int = 0
    _window_start: float = field(default=float("-inf"))
    _in_window: int = 0

    def admit(self) -> bool:
        """True when a record may be written now; else one more is counted as suppressed."""
        now = self.clock.now().timestamp()
        if now - self._window_start >= self.window_s:
            self._window_start, self._in_window = now, 0
        if self._in_window < self.burst:
            self._in_window += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """How many were held back since the last record (and start counting again)."""
        held, self.suppressed = self.suppressed, 0
        return held
