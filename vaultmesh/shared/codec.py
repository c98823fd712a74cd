"""Wire codec: JSON by default, MessagePack on request, and the reply envelope.

Every reply is ``{"status": "success", "data": ...}`` or
``{"status": "error", "code": ..., "message": ...}`` (the seed 003 vault format,
used by every service). A reply is encoded in the format of its request.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgpack
import orjson
from pydantic import BaseModel

from vaultmesh.shared.errors import BadRequest, PayloadTooLarge, VaultMeshError, error_for_code

CONTENT_TYPE = "Content-Type"
JSON_TYPE = "application/json"
MSGPACK_TYPE = "application/msgpack"
# NATS micro error headers, so standard tooling sees failures too.
ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"
# JetStream: a publish's de-duplication id, and the status line of server replies
# (503 no responders, 404 not found, 204 end of batch).
MSG_ID_HEADER = "Nats-Msg-Id"
STATUS_HEADER = "Status"
# JetStream compare-and-set: a publish stored only if the stream's (or the subject's) last
# sequence is the one named; otherwise the server answers with one of these error codes.
EXPECTED_LAST_SEQUENCE_HEADER = "Nats-Expected-Last-Sequence"
EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE_CODES = frozenset({10071, 10164})


def wrong_last_sequence(exc: BaseException) -> bool:
    """True when ``exc`` is JetStream's answer to a compare-and-set that lost."""
    return getattr(exc, "err_code", None) in WRONG_LAST_SEQUENCE_CODES


DEFAULT_MAX_BYTES = 1024 * 1024


class WireFormat(StrEnum):
    """The two encodings a request or reply may use."""

    JSON = "json"
    MSGPACK = "msgpack"

    @property
    def content_type(self) -> str:
        """The Content-Type header value for this format."""
        return MSGPACK_TYPE if self is WireFormat.MSGPACK else JSON_TYPE


def format_of(headers: dict[str, str] | None) -> WireFormat:
    """The wire format a message's headers announce (JSON when absent)."""
    if headers and headers.get(CONTENT_TYPE, "").lower().startswith(MSGPACK_TYPE):
        return WireFormat.MSGPACK
    return WireFormat.JSON


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot encode {type(obj).__name__}")


def to_plain(obj: Any) -> Any:
    """Turn models (and containers of them) into JSON-compatible plain data."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, list | tuple):
        return [to_plain(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_plain(value) for key, value in obj.items()}
    return obj


def encode(obj: Any, fmt: WireFormat = WireFormat.JSON) -> bytes:
    """Encode plain data or pydantic models in ``fmt``."""
    if fmt is WireFormat.MSGPACK:
        return bytes(msgpack.packb(to_plain(obj), use_bin_type=True))
    return orjson.dumps(obj, default=_default)


def decode(
    data: bytes, fmt: WireFormat = WireFormat.JSON, max_bytes: int = DEFAULT_MAX_BYTES
) -> Any:
    """Decode a body in ``fmt``; raise BadRequest with a clear message when it is not valid."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"body is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        return None
    if fmt is WireFormat.MSGPACK:
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise BadRequest(f"malformed MessagePack body: {type(exc).__name__}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc.msg} at position {exc.pos}") from None


def success(data: Any = None) -> dict[str, Any]:
    """A success envelope around ``data``."""
    return {"status": "success", "data": data}


def failure(error: VaultMeshError) -> dict[str, Any]:
    """An error envelope for ``error``."""
    return {"status": "error", "code": error.code, "message": error.message}


def reply_headers(fmt: WireFormat, error: VaultMeshError | None = None) -> dict[str, str]:
    """Headers of a reply: its content type, plus the micro error headers on failure."""
    headers = {CONTENT_TYPE: fmt.content_type}
    if error is not None:
        headers[ERROR_HEADER] = error.message
        headers[ERROR_CODE_HEADER] = str(error.http_status)
    return headers


def unwrap(envelope: Any) -> Any:
    """Return the ``data`` of a success envelope or raise the typed error it carries."""
    if not isinstance(envelope, dict) or envelope.get("status") not in ("success", "error"):
        raise BadRequest("reply is not a VaultMesh envelope")
    if envelope["status"] == "success":
        return envelope.get("data")
    code = str(envelope.get("code", "internal"))
    raise error_for_code(code, str(envelope.get("message", "unknown error")))
