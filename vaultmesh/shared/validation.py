"""Turning untrusted plain data into models, with errors a caller can act on."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vaultmesh.shared.errors import BadRequest

M = TypeVar("M", bound=BaseModel)
_MAX_PROBLEMS = 5


def describe(exc: ValidationError) -> str:
    """A short, secret-free description of what failed validation (no input values)."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False)[:_MAX_PROBLEMS]:
        where = ".".join(str(part) for part in err["loc"]) or "body"
        problems.append(f"{where}: {err['msg']}")
    extra = exc.error_count() - len(problems)
    if extra > 0:
        problems.append(f"and {extra} more")
    return "; ".join(problems)


def parse(model: type[M], data: Any) -> M:
    """Validate plain ``data`` as ``model``; raise BadRequest naming the bad fields."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest(f"body must be an object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(f"invalid {model.__name__}: {describe(exc)}") from None


def parse_json(model: type[M], raw: bytes | str) -> M:
    """Validate a JSON document as ``model`` in one pass (the fast path for hot subjects)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise BadRequest("malformed JSON body") from None
        raise BadRequest(f"invalid {model.__name__}: {describe(exc)}") from None
