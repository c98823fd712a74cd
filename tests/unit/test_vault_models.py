"""Request validation: native and seed forms, and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from vaultmesh.services.vault.models import (
    GetRequest,
    ListRequest,
    SetRequest,
    key_of,
    operation_name,
    parse_request,
)
from vaultmesh.shared.errors import BadRequest, UnknownOperation


def test_native_requests() -> None:
    op, request, seed = parse_request("get", {"key": "db/password", "version": 2})
    assert (op, seed) == ("get", False)
    assert isinstance(request, GetRequest)
    assert request.version == 2
    assert key_of(request) == "db/password"
    op, request, _ = parse_request("list", None)
    assert isinstance(request, ListRequest)
    assert request.prefix == ""
    assert key_of(request) is None


def test_the_seed_form_and_its_subject_field_is_ignored() -> None:
    body = {"operation": "set", "key": "mysecret", "value": "secretvalue", "subject": "x.requests"}
    op, request, seed = parse_request("requests", body)
    assert (op, seed) == ("set", True)
    assert isinstance(request, SetRequest)
    assert request.value == "secretvalue"


@pytest.mark.parametrize(
    ("op", "payload", "error", "fragment"),
    [
        ("frobnicate", {}, UnknownOperation, "unknown operation 'frobnicate'"),
        ("requests", {"operation": "frobnicate"}, UnknownOperation, "frobnicate"),
        ("requests", {"operation": ["get"]}, UnknownOperation, "list"),
        ("requests", {"key": "k"}, BadRequest, "missing `operation`"),
        ("requests", ["get", "k"], BadRequest, "object"),
        ("get", {"key": ""}, BadRequest, "key"),
        ("get", {}, BadRequest, "key: Field required"),
        ("get", {"key": 5}, BadRequest, "key"),
        ("get", {"key": "k", "version": 0}, BadRequest, "version"),
        ("get", {"key": "k", "version": True}, BadRequest, "version"),
        ("get", {"key": "k", "version": "1"}, BadRequest, "version"),
        ("set", {"key": "k"}, BadRequest, "value"),
        ("set", {"key": "k", "value": 42}, BadRequest, "value"),
        ("set", {"key": "k", "value": "v", "cas": -1}, BadRequest, "cas"),
        ("set", {"key": "k", "value": "v", "extra": 1}, BadRequest, "extra"),
        ("delete", {"key": "k", "cas": 0}, BadRequest, "cas"),
        ("list", {"prefix": "a*"}, BadRequest, "prefix"),
        ("status", {"anything": 1}, BadRequest, "anything"),
        ("get", "k", BadRequest, "object"),
    ],
)
def test_bad_requests(op: str, payload: Any, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        parse_request(op, payload)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "key", ["a b", "a//b", "/a", "a/", "a/../b", ".", "a/./b", "a*", "x" * 257, "é", "a\nb"]
)
def test_bad_key_paths(key: str) -> None:
    with pytest.raises(BadRequest, match="key"):
        parse_request("get", {"key": key})


@pytest.mark.parametrize("key", ["a", "db/prod/password", "a.b", "x:y@z=w+v", "x" * 256, "..a"])
def test_good_key_paths(key: str) -> None:
    assert key_of(parse_request("get", {"key": key})[1]) == key


def test_values_are_never_echoed_in_errors() -> None:
    with pytest.raises(BadRequest) as info:
        parse_request("set", {"key": "k", "value": {"nested": "s3cr3t-value"}})
    assert "s3cr3t-value" not in str(info.value)


def test_operation_names_are_bounded() -> None:
    assert operation_name("get") == "get"
    assert operation_name("../etc") == "unknown"
    assert operation_name(["get"]) == "unknown"
