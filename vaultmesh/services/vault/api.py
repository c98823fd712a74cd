"""The vault's bus handler: principal from the subject, ACL, the operation, audit, reply.

Order of events for one request on ``vault.<principal>.<op>``:

1. decode and validate (bad input is a clear error, counted and audited);
2. authorize against the ACL (deny: ``{"status": "error", "message": "Access denied"}``);
3. in fail-closed mode, a write (``set``/``delete``/``rotate``) first stores its
   audit record (``detail.phase = "before"``) and is refused if it cannot;
4. execute;
5. audit: best effort, the record is queued and published after the reply; in
   fail-closed mode a read waits for its record's acknowledgement and returns
   nothing if it fails, and a write that failed at step 4 adds an error record.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from vaultmesh.services.vault.acl import PolicyHolder
from vaultmesh.services.vault.audit import AuditEntry, AuditTrail
from vaultmesh.services.vault.errors import AccessDenied
from vaultmesh.services.vault.models import (
    SEED_ENDPOINT,
    WRITES,
    DeleteRequest,
    GetRequest,
    ListRequest,
    SetRequest,
    key_of,
    operation_name,
    parse_request,
)
from vaultmesh.services.vault.vault import Vault, describe
from vaultmesh.shared import codec, subjects
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.errors import BadRequest, Internal, PayloadTooLarge, VaultMeshError
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.audit import Outcome

log = logging.getLogger(__name__)
Result = tuple[Any, Any, dict[str, Any]]  # (native data, seed-form data, audit detail)
# Reads that never wait on the SQLite backend: answered inline, the cheapest path.
# Everything that may wait (writes, the KV backend, fail-closed audit) runs in a task.
INLINE_READS = frozenset({"get", "list", "status"})
# Read requests carry no value, so a decoded one may be remembered (see ``_decode``).
_MEMO_OPS = INLINE_READS
_MEMO_SIZE = 1024
_MEMO_MAX_BYTES = 512
_Decoded = tuple[str, str, BaseModel, bool, str | None]  # principal, op, request, seed, key


@dataclass(slots=True)
class Context:
    """What is known about the request being served so far."""

    started: float
    principal: str = ""
    op: str = "unknown"
    key: str | None = None
    audited_before: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


def _principal(subject: str) -> tuple[str, str]:
    try:
        principal, endpoint = subjects.vault_parts(subject)
        return subjects.token(principal), endpoint
    except ValueError:
        raise BadRequest("not a vault request subject") from None


def _audited(result: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The details an audit record keeps: the operation's, plus ``extra``, audited keys only."""
    merged = {**result, **extra} if extra else result
    if _AUDITED.issuperset(merged):  # the usual case: a get's or set's {"version": n}
        return merged
    return {k: v for k, v in merged.items() if k in _AUDITED}


def _outcome(error: VaultMeshError | None) -> Outcome:
    if error is None:
        return Outcome.ALLOWED
    return Outcome.DENIED if isinstance(error, AccessDenied) else Outcome.ERROR


class VaultHandlers:
    """Serves one request end to end and returns its envelope; never raises."""

    def __init__(
        self,
        vault: Vault,
        policy: PolicyHolder,
        audit: AuditTrail,
        metrics: ServiceMetrics,
        clock: Clock,
        *,
        max_request_bytes: int,
        max_value_bytes: int,
    ) -> None:
        self._vault = vault
        self._policy = policy
        self._audit = audit
        self._metrics = metrics
        self._clock = clock
        self._max_request = max_request_bytes
        self._max_value = max_value_bytes
        self._started_at = clock.now()
        # Decoded read requests by (subject, body, format): validation is pure, so a
        # repeated read skips it (never a write: its body holds a value).
        self._decoded: dict[tuple[str, bytes, codec.WireFormat], _Decoded] = {}
        self._ops = {
            "get": self._get,
            "set": self._set,
            "delete": self._delete,
            "list": self._list,
            "rotate": self._rotate,
            "status": self._status,
        }

    async def handle(
        self, subject: str, data: bytes, fmt: codec.WireFormat
    ) -> tuple[dict[str, Any], VaultMeshError | None]:
        """The reply envelope for one request, and the error it carries (if any)."""
        ctx = Context(started=time.perf_counter())
        error: VaultMeshError | None = None
        try:
            body = codec.success(await self._serve(ctx, subject, data, fmt))
        except VaultMeshError as exc:
            error = exc
        except Exception as exc:  # a bug: log the frames, never the message (it may hold data)
            log.error(
                "handler failed",
                extra={"op": ctx.op, "error_type": type(exc).__name__, "frames": _frames(exc)},
            )
            error = Internal("internal error; see the service log")
        if error is not None:
            body = codec.failure(error)
        self._count(ctx, error)
        return body, error

    async def _serve(self, ctx: Context, subject: str, data: bytes, fmt: codec.WireFormat) -> Any:
        try:
            request, seed = self._decode(ctx, subject, data, fmt)
            self._authorize(ctx, request)
            if self._audit.fail_closed and ctx.op in WRITES:
                await self._audit.write(self._entry(ctx, None, phase="before"))
                ctx.audited_before = True
            native, seed_data, ctx.detail = await self._ops[ctx.op](ctx, request)
        except VaultMeshError as exc:
            await self._record(ctx, exc)
            raise
        await self._record(ctx, None)
        return seed_data if seed else native

    def _decode(
        self, ctx: Context, subject: str, data: bytes, fmt: codec.WireFormat
    ) -> tuple[BaseModel, bool]:
        memo = (subject, data, fmt)
        known = self._decoded.get(memo)
        if known is not None:
            ctx.principal, ctx.op, request, seed, ctx.key = known
            return request, seed
        principal, endpoint = _principal(subject)
        ctx.principal = principal
        ctx.op = operation_name(endpoint)
        payload = codec.decode(data, fmt, self._max_request)
        if endpoint == SEED_ENDPOINT and isinstance(payload, dict):
            ctx.op = operation_name(payload.get("operation"))
        ctx.op, request, seed = parse_request(endpoint, payload)
        ctx.key = key_of(request)
        if ctx.op in _MEMO_OPS and len(data) <= _MEMO_MAX_BYTES:
            # Clients read the same keys over and over; a read request holds no value.
            if len(self._decoded) >= _MEMO_SIZE:
                self._decoded.clear()
            self._decoded[memo] = (ctx.principal, ctx.op, request, seed, ctx.key)
        return request, seed

    def _authorize(self, ctx: Context, request: BaseModel) -> None:
        policy = self._policy.policy
        if ctx.key is not None:
            allowed = policy.allows(ctx.principal, ctx.op, ctx.key)
        else:
            allowed = policy.may(ctx.principal, ctx.op)
        if not allowed:
            raise AccessDenied()

    # ---- audit and metrics -------------------------------------------------------------

    def _entry(self, ctx: Context, error: VaultMeshError | None, **detail: Any) -> AuditEntry:
        audited_key = ctx.key
        if ctx.op == "list" and ctx.detail.get("prefix_set"):
            audited_key = ctx.detail.get("prefix")
        return AuditEntry(
            ts=self._clock.now(),
            principal=ctx.principal,
            action=ctx.op,
            outcome=_outcome(error),
            key=audited_key,
            code=None if error is None else error.code,
            latency_ms=round((time.perf_counter() - ctx.started) * 1000, 3),
            detail=_audited(ctx.detail, detail),
        )

    async def _record(self, ctx: Context, error: VaultMeshError | None) -> None:
        entry = self._entry(ctx, error)
        if not self._audit.fail_closed:
            self._audit.submit(entry)
        elif error is not None:
            with contextlib.suppress(VaultMeshError):  # the request fails anyway, with its error
                await self._audit.write(entry)
        elif not ctx.audited_before:
            await self._audit.write(entry)  # a read: nothing is returned unless this is stored

    def _count(self, ctx: Context, error: VaultMeshError | None) -> None:
        outcome = "ok" if error is None else error.code
        self._metrics.count_request(ctx.op, outcome, time.perf_counter() - ctx.started)
        if isinstance(error, BadRequest):
            self._metrics.count_bad_input(ctx.op, error.code)

    # ---- operations --------------------------------------------------------------------

    async def _get(self, ctx: Context, request: BaseModel) -> Result:
        assert isinstance(request, GetRequest)
        revealed = await self._vault.get(request.key, request.version)
        native = {
            **describe(revealed.secret),
            "version": revealed.version.number,
            "value": revealed.value,
        }
        return native, revealed.value, {"version": revealed.version.number}

    async def _set(self, ctx: Context, request: BaseModel) -> Result:
        assert isinstance(request, SetRequest)
        try:
            size = len(request.value.encode("utf-8"))
        except UnicodeEncodeError:
            raise BadRequest("value must be valid Unicode text") from None
        if size > self._max_value:
            raise PayloadTooLarge(f"value is {size} bytes; the limit is {self._max_value}")
        secret = await self._vault.set(request.key, request.value, request.cas)
        return {**describe(secret), "version": secret.current}, None, {"version": secret.current}

    async def _delete(self, ctx: Context, request: BaseModel) -> Result:
        assert isinstance(request, DeleteRequest)
        secret = await self._vault.delete(request.key, request.cas)
        native = {"key": secret.path, "deleted": True, "version": secret.current}
        return native, None, {"version": secret.current}

    async def _list(self, ctx: Context, request: BaseModel) -> Result:
        assert isinstance(request, ListRequest)
        policy = self._policy.policy
        keys = [
            key
            for key in await self._vault.list_keys(request.prefix)
            if policy.allows(ctx.principal, "list", key)
        ]
        detail = {"count": len(keys), "prefix": request.prefix, "prefix_set": bool(request.prefix)}
        return {"prefix": request.prefix, "keys": keys}, keys, detail

    async def _rotate(self, ctx: Context, request: BaseModel) -> Result:
        term = await self._vault.rotate()
        data = {"key_term": term, "rewrap": self._vault.rewrap.progress.as_dict()}
        return data, data, {"term": term}

    async def _status(self, ctx: Context, request: BaseModel) -> Result:
        data = await self._vault.status()
        data["uptime_s"] = round((self._clock.now() - self._started_at).total_seconds(), 3)
        data["audit"] = {
            "mode": "fail-closed" if self._audit.fail_closed else "best-effort",
            "pending": self._audit.pending,
        }
        return data, data, {}


# Audit detail keys that may be published (never a key name, prefix or value).
_AUDITED = frozenset({"version", "term", "count", "phase"})


def _frames(exc: BaseException) -> list[str]:
    return [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)]
