"""Codec and envelope: pure logic."""

from __future__ import annotations

import msgpack
import pytest

from vaultmesh.shared import codec
from vaultmesh.shared.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, VaultMeshError
from vaultmesh.shared.models.fleet import FleetCounts


def test_format_follows_content_type() -> None:
    assert codec.format_of(None) is codec.WireFormat.JSON
    assert codec.format_of({"Content-Type": "application/json"}) is codec.WireFormat.JSON
    assert codec.format_of({"Content-Type": "application/msgpack"}) is codec.WireFormat.MSGPACK


@pytest.mark.parametrize("fmt", list(codec.WireFormat))
def test_round_trip_with_models(fmt: codec.WireFormat) -> None:
    counts = FleetCounts(total=3, healthy=1, attention=1, critical=1)
    data = codec.encode(codec.success([counts]), fmt)
    assert codec.decode(data, fmt) == {"status": "success", "data": [counts.model_dump()]}


def test_decode_rejects_malformed_json_with_position() -> None:
    with pytest.raises(BadRequest, match="malformed JSON body"):
        codec.decode(b'{"a": ')


def test_decode_rejects_malformed_msgpack() -> None:
    with pytest.raises(BadRequest, match="malformed MessagePack"):
        codec.decode(b"\xc1\xc1", codec.WireFormat.MSGPACK)


def test_decode_rejects_msgpack_with_non_string_keys() -> None:
    packed = msgpack.packb({1: 2})
    with pytest.raises(BadRequest):
        codec.decode(packed, codec.WireFormat.MSGPACK)


def test_decode_enforces_size_limit() -> None:
    with pytest.raises(PayloadTooLarge, match="limit is 4"):
        codec.decode(b"12345", max_bytes=4)


def test_empty_body_is_none() -> None:
    assert codec.decode(b"") is None


def test_failure_envelope_and_headers() -> None:
    err = Conflict("cas mismatch")
    assert codec.failure(err) == {"status": "error", "code": "conflict", "message": "cas mismatch"}
    headers = codec.reply_headers(codec.WireFormat.JSON, err)
    assert headers[codec.ERROR_HEADER] == "cas mismatch"
    assert headers[codec.ERROR_CODE_HEADER] == "409"


def test_unwrap_returns_data_or_raises_typed_error() -> None:
    assert codec.unwrap({"status": "success", "data": 7}) == 7
    with pytest.raises(NotFound, match="no such node"):
        codec.unwrap({"status": "error", "code": "not_found", "message": "no such node"})


def test_unwrap_keeps_unknown_codes() -> None:
    with pytest.raises(VaultMeshError) as info:
        codec.unwrap({"status": "error", "code": "integrity", "message": "tampered"})
    assert info.value.code == "integrity"
