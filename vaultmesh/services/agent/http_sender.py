"""Heartbeats over HTTP: ``POST <CC_URL>/api/agent/heartbeat`` (seed 000)."""

from __future__ import annotations

import httpx

from vaultmesh import __version__
from vaultmesh.services.agent.errors import SendError
from vaultmesh.shared.models.heartbeat import Heartbeat

HEARTBEAT_PATH = "/api/agent/heartbeat"
TOKEN_HEADER = "X-Host-Token"  # noqa: S105 (a header name, not a secret)
_MAX_REASON = 200
_USER_AGENT = f"vaultmesh-agent/{__version__}"


class HttpSender:
    """POSTs each heartbeat to the Command Center (the gateway)."""

    def __init__(
        self,
        cc_url: str,
        token: str | None,
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = cc_url.rstrip("/") + HEARTBEAT_PATH
        self._token = token
        self._timeout = timeout
        # Redirects are not followed: an https -> http hop must not carry the token.
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    @property
    def target(self) -> str:
        """The heartbeat URL."""
        return self._url

    async def send(self, heartbeat: Heartbeat) -> None:
        """POST one heartbeat; raise SendError on a network failure or a non-2xx answer."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"vaultmesh-agent/{__version__}",
        }
        if self._token:
            headers[TOKEN_HEADER] = self._token
        body = heartbeat.model_dump_json(exclude_none=True)
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise SendError(f"no answer from {self._url} within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise SendError(f"cannot reach {self._url}: {type(exc).__name__}") from None
        if not response.is_success:
            raise SendError(
                f"{self._url} answered {response.status_code}{_reason(response)}",
                status=response.status_code,
            )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _reason(response: httpx.Response) -> str:
    """The seed 000 ``{"error": ...}`` text of an error answer, shortened, if there is one."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {str(error)[:_MAX_REASON]}" if error else ""
