"""Wire models of the vault's requests, and how a seed-style request maps onto them.

Native requests go to ``vault.<principal>.<op>``. The seed's form
(``{"operation": ..., "key": ..., "value": ...}``) goes to
``vault.<principal>.requests``; its ``subject`` field is accepted and IGNORED:
the principal always comes from the subject token the server authorized.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StrictInt, StrictStr

from vaultmesh.shared.errors import BadRequest, UnknownOperation
from vaultmesh.shared.models.common import StrictModel
from vaultmesh.shared.validation import parse

OPERATIONS = ("get", "set", "delete", "list", "rotate", "status")
KEYLESS = frozenset({"rotate", "status"})
WRITES = frozenset({"set", "delete", "rotate"})
SEED_ENDPOINT = "requests"
MAX_KEY_CHARS = 256
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-.:@=+]+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_\-.:@=+/]*$")
KEY_RULE = (
    "must be 1-256 characters of A-Z a-z 0-9 _ - . : @ = +, in segments separated by "
    "single '/', none of them '.' or '..'"
)


def _key_path(value: str) -> str:
    segments = value.split("/")
    if len(value) > MAX_KEY_CHARS or not all(
        _SEGMENT.match(s) and s not in (".", "..") for s in segments
    ):
        raise ValueError(KEY_RULE)
    return value


KeyPath = Annotated[StrictStr, Field(min_length=1), AfterValidator(_key_path)]
Prefix = Annotated[StrictStr, Field(max_length=MAX_KEY_CHARS, pattern=_PREFIX.pattern)]


class GetRequest(StrictModel):
    """Read a secret: its current version, or ``version`` while it is retained."""

    key: KeyPath
    version: Annotated[StrictInt, Field(ge=1)] | None = None


class SetRequest(StrictModel):
    """Write a new version; with ``cas`` only if the current version is ``cas`` (0: absent)."""

    key: KeyPath
    value: StrictStr
    cas: Annotated[StrictInt, Field(ge=0)] | None = None


class DeleteRequest(StrictModel):
    """Delete a secret and all its versions; with ``cas`` only if it is at that version."""

    key: KeyPath
    cas: Annotated[StrictInt, Field(ge=1)] | None = None


class ListRequest(StrictModel):
    """List the key paths starting with ``prefix``."""

    prefix: Prefix = ""


class NoArguments(StrictModel):
    """``rotate`` and ``status`` take no arguments."""


REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "get": GetRequest,
    "set": SetRequest,
    "delete": DeleteRequest,
    "list": ListRequest,
    "rotate": NoArguments,
    "status": NoArguments,
}


def operation_name(op: Any) -> str:
    """``op`` if it is a known operation, else ``"unknown"`` (a bounded label)."""
    return op if isinstance(op, str) and op in REQUEST_MODELS else "unknown"


def _unknown(op: Any) -> UnknownOperation:
    shown = op[:32] if isinstance(op, str) else type(op).__name__
    return UnknownOperation(f"unknown operation {shown!r}; use one of {', '.join(OPERATIONS)}")


def parse_request(op: str, payload: Any) -> tuple[str, BaseModel, bool]:
    """Validate a request sent to ``vault.<p>.<op>``: (operation, model, seed_form)."""
    if op != SEED_ENDPOINT:
        if op not in REQUEST_MODELS:
            raise _unknown(op)
        return op, parse(REQUEST_MODELS[op], payload), False
    if not isinstance(payload, dict):
        raise BadRequest("a request to .requests must be an object with an `operation`")
    body = dict(payload)
    seed_op = body.pop("operation", None)
    body.pop("subject", None)  # never used for authorization; see the module docstring
    if seed_op is None:
        raise BadRequest("missing `operation`")
    if not isinstance(seed_op, str) or seed_op not in REQUEST_MODELS:
        raise _unknown(seed_op)
    return seed_op, parse(REQUEST_MODELS[seed_op], body), True


def key_of(request: BaseModel) -> str | None:
    """The key path a request is about, if any."""
    key = getattr(request, "key", None)
    return key if isinstance(key, str) else None
