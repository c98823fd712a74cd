"""Reading request bodies: JSON (content type, strict JSON, then the model — in that
order) and the small urlencoded forms of the sign-in page and the console.

Bodies are parsed by the handler (after authentication), not by FastAPI, so an
unauthenticated caller never gets its body parsed, the size limit has already
been enforced by ``BodyLimit``, the JSON syntax is strict (no NaN or Infinity,
no lone surrogates, bounded nesting) and so are the types.
"""

from __future__ import annotations

from email.message import Message
from typing import Any, TypeVar
from urllib.parse import parse_qs

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from vaultmesh.services.gateway.errors import InvalidInput, UnsupportedMediaType
from vaultmesh.shared.errors import BadRequest
from vaultmesh.shared.validation import describe

M = TypeVar("M", bound=BaseModel)
INPUT_SUFFIX = "-Input"
# The integers orjson (the bus codec) can encode: what the gateway accepts and documents.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # seed-V1 style clients may omit it; the body must still be JSON
    if content_type == "application/json":
        return True  # the common case, without parsing the header
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _json_data(raw: bytes, content_type: str | None) -> Any:
    """The JSON data of a body; raise 415/400 when it is not JSON."""
    if not _is_json(content_type):
        raise UnsupportedMediaType("body must be application/json")
    if not raw:
        raise BadRequest("empty body; a JSON object is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc.msg} at position {exc.pos}") from None


def parse_model(raw: bytes, content_type: str | None, model: type[M]) -> M:
    """A body validated as ``model``; raise 415/400/422 with a clear message.

    orjson checks the syntax (it refuses NaN, Infinity and lone surrogates);
    then the model validates in strict mode, so the body must match the
    published schema exactly ("30" is not a number, 0 is not a timestamp).
    As in JSON Schema, ``25.0`` is an integer: integral numbers within 64 bits
    are read as integers before validation.
    """
    data = _json_data(raw, content_type)
    if not isinstance(data, dict):
        raise InvalidInput(f"body must be a JSON object, not {type(data).__name__}")
    if _has_integral_float(data):
        raw = orjson.dumps(_integral(data))
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {model.__name__}: {describe(exc)}") from None


async def read_model(request: Request, model: type[M]) -> M:
    """The request's body validated as ``model`` (see ``parse_model``)."""
    return parse_model(await request.body(), request.headers.get("content-type"), model)


def _integral(value: Any) -> Any:
    """``value`` with every integral float within 64 bits turned into an int."""
    if isinstance(value, float) and value.is_integer() and INT_MIN <= value <= INT_MAX:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


_SCALARS = (str, bool, int, type(None))


def _has_integral_float(value: Any) -> bool:
    # ``value`` comes from orjson: exact builtin types, so ``type(...) is`` is enough.
    kind = type(value)
    if kind is float:
        return value.is_integer() and INT_MIN <= value <= INT_MAX  # type: ignore[no-any-return]
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    # A plain loop: any() over a generator costs twice as much, on every request body.
    for item in value:  # noqa: SIM110
        if type(item) not in _SCALARS and _has_integral_float(item):
            return True
    return False


def bound_integers(schema: Any) -> None:
    """Give every ``integer`` in a JSON Schema the 64-bit range the gateway accepts."""
    if isinstance(schema, dict):
        if schema.get("type") == "integer":
            schema.setdefault("maximum", INT_MAX)
            schema.setdefault("minimum", INT_MIN)
        for item in schema.values():
            bound_integers(item)
    elif isinstance(schema, list):
        for item in schema:
            bound_integers(item)


def to_json(model: BaseModel, *, exclude_none: bool = False) -> bytes:
    """``model`` as the JSON the bus carries; 422 if a number is outside 64 bits."""
    return dump_json(model.model_dump(mode="json", exclude_none=exclude_none))


def dump_json(data: Any) -> bytes:
    """JSON-ready ``data`` (a model's ``model_dump(mode="json")``) as bytes; 422 past 64 bits."""
    try:
        return orjson.dumps(data)
    except TypeError:
        raise InvalidInput("integers must fit in 64 bits") from None


def json_body_spec(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the required JSON request body."""
    ref = f"#/components/schemas/{model.__name__}{INPUT_SUFFIX}"
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": ref}}},
        }
    }


def form_fields(body: bytes) -> dict[str, list[str]]:
    """The urlencoded fields of a small form (nothing, when it is not one)."""
    try:
        text = body.decode("utf-8", errors="replace")
        return parse_qs(text, keep_blank_values=True, max_num_fields=16)
    except ValueError:  # too many fields: not our form
        return {}
