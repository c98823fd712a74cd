"""The one way to connect to NATS, and to make envelope requests over it.

Start-up fails fast on a dead server (``nats_connect_attempts`` tries), then the
connection keeps reconnecting for as long as ``nats_max_reconnects`` allows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError

from vaultmesh.shared import codec
from vaultmesh.shared.config import BusSettings
from vaultmesh.shared.errors import Unavailable

log = logging.getLogger(__name__)


def _auth_options(settings: BusSettings) -> dict[str, Any]:
    if settings.nats_creds_file is not None:
        return {"user_credentials": str(settings.nats_creds_file)}
    if settings.nats_nkey_seed_file is not None:
        return {"nkeys_seed": str(settings.nats_nkey_seed_file)}
    if settings.nats_token:
        return {"token": settings.nats_token}
    if settings.nats_user:
        return {"user": settings.nats_user, "password": settings.nats_password or ""}
    return {}


class _ErrorThrottle:
    """Logs each kind of connection error at most once per interval, with a count.

    nats-py reports a slow consumer once per dropped message; without this a long
    replay could write thousands of identical lines.
    """

    def __init__(self, interval_s: float = 10.0) -> None:
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    async def report(self, exc: Exception) -> None:
        """The nats-py ``error_cb`` (it must be a coroutine function, not a callable object)."""
        kind = type(exc).__name__
        now = time.monotonic()
        if now - self._last.get(kind, -self._interval) < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        repeats = self._suppressed.pop(kind, 0)
        log.warning("nats connection error", extra={"error_type": kind, "repeats": repeats})


def _lifecycle_callbacks(nc: Client) -> dict[str, Any]:
    """Disconnect/reconnect logging that stays quiet on our own drain or close."""

    async def disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):
            log.warning("disconnected from nats")

    async def reconnected() -> None:
        log.info("reconnected to nats")

    return {"disconnected_cb": disconnected, "reconnected_cb": reconnected}


async def connect(settings: BusSettings, name: str) -> Client:
    """Connect as ``name``; raise Unavailable quickly when no server answers."""
    nc = Client()
    # nats-py annotates the timeouts as int but uses them as asyncio timeouts: floats work.
    timeouts: dict[str, Any] = {
        "connect_timeout": settings.nats_connect_timeout,
        "reconnect_time_wait": settings.nats_reconnect_wait,
    }
    try:
        await nc.connect(
            servers=[url.strip() for url in settings.nats_url.split(",")],
            name=name,
            max_reconnect_attempts=settings.nats_connect_attempts,
            error_cb=_ErrorThrottle().report,
            inbox_prefix=settings.nats_inbox_prefix,
            **timeouts,
            **_lifecycle_callbacks(nc),
            **_auth_options(settings),
        )
    except (NoServersError, OSError, TimeoutError, NatsError) as exc:
        raise Unavailable(
            f"cannot connect to NATS at {settings.nats_url} as {name}: {type(exc).__name__}"
        ) from None
    # From here on a lost server is retried for as long as the settings allow.
    nc.options["max_reconnect_attempts"] = settings.nats_max_reconnects
    return nc


async def close(nc: Client) -> None:
    """Drain (flush pending work, stop subscriptions) and close; safe to call twice,
    and while the server is gone."""
    if nc.is_closed:
        return
    try:
        await nc.drain()
    except (NatsError, TimeoutError, OSError):
        await close_now(nc)


async def close_now(nc: Client) -> None:
    """Close without draining. While reconnecting, nats-py (2.16) writes what it buffered
    for the server to the dead socket and raises RuntimeError: that buffer is lost anyway."""
    try:
        await nc.close()
    except RuntimeError:
        log.debug("closed while disconnected; unsent messages dropped")


async def request(
    nc: Client,
    subject: str,
    payload: Any = None,
    *,
    timeout: float = 5.0,
    fmt: codec.WireFormat = codec.WireFormat.JSON,
) -> Any:
    """Send an envelope request and return its ``data``; raise the typed error on failure."""
    body = b"" if payload is None else codec.encode(payload, fmt)
    headers = {codec.CONTENT_TYPE: fmt.content_type}
    try:
        msg = await nc.request(subject, body, timeout=timeout, headers=headers)
    except NoRespondersError:
        raise Unavailable(f"no service is answering on {subject}") from None
    except (NatsTimeoutError, TimeoutError):
        raise Unavailable(f"no reply on {subject} within {timeout:g}s") from None
    except NatsError as exc:
        raise Unavailable(f"bus error on {subject}: {type(exc).__name__}") from None
    return codec.unwrap(codec.decode(msg.data, codec.format_of(msg.headers)))
