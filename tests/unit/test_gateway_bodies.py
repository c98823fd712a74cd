"""Request body parsing: strict JSON, then strict model validation (no I/O)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from vaultmesh.services.gateway.bodies import parse_model
from vaultmesh.services.gateway.errors import InvalidInput
from vaultmesh.shared.errors import BadRequest


class Inner(BaseModel):
    count: int
    ratio: float


class Outer(BaseModel):
    inner: Inner
    counts: list[int]
    extra: dict[str, Any] = {}


def body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"inner": {"count": 1, "ratio": 0.5}, "counts": [1, 2]}
    return orjson.dumps({**base, **fields})


def test_integral_floats_anywhere_are_integers() -> None:
    parsed = parse_model(
        body(inner={"count": 3.0, "ratio": 2.0}, counts=[1.0, 2, 4.0]), None, Outer
    )
    assert parsed.inner.count == 3
    assert type(parsed.inner.count) is int
    assert parsed.inner.ratio == 2.0
    assert parsed.counts == [1, 2, 4]


@pytest.mark.parametrize(
    "fields",
    [
        {"inner": {"count": 3.5, "ratio": 1}},  # not integral
        {"counts": [1e20]},  # integral, but beyond 64 bits: stays a float
        {"inner": {"count": "3", "ratio": 1}},  # strict: text is not a number
        {"counts": [True]},  # strict: a boolean is not an integer
    ],
)
def test_what_is_not_an_integer_stays_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="invalid Outer"):
        parse_model(body(**fields), "application/json", Outer)


def test_non_finite_numbers_are_malformed_json() -> None:
    raw = body().replace(b'"ratio":0.5', b'"ratio":NaN')
    with pytest.raises(BadRequest, match="malformed JSON"):
        parse_model(raw, "application/json", Outer)


def test_integral_floats_inside_ignored_data_do_not_matter() -> None:
    parsed = parse_model(body(extra={"a": [{"b": 2.0}], "c": None, "d": "x"}), None, Outer)
    assert parsed.extra == {"a": [{"b": 2}], "c": None, "d": "x"}
