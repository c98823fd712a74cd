"""How the heartbeat hot path frames plain posts (``frame``) and writes answers (``encode``)."""

from __future__ import annotations

import pytest

from vaultmesh.services.gateway.httpserver.answers import Reply, encode
from vaultmesh.services.gateway.httpserver.limits import HttpLimits
from vaultmesh.services.gateway.ingest.framing import (
    HEAD_TOO_LARGE,
    MAX_KNOWN_HEAD_BYTES,
    MAX_KNOWN_HEADS,
    MORE,
    OTHER,
    TOO_MANY_HEADERS,
    Head,
    HeartbeatPost,
    frame,
)

BODY = b'{"node_id":"n"}'
LIMIT = HttpLimits(body_bytes=1024, head_bytes=4096, headers=20)


def post(*headers: str, body: bytes = BODY, target: str = "/api/agent/heartbeat") -> bytes:
    """A heartbeat post with ``headers`` (Content-Length is not added for you)."""
    head = "\r\n".join((f"POST {target} HTTP/1.1", "Host: gw", *headers))
    return head.encode() + b"\r\n\r\n" + body


def plain(*headers: str, body: bytes = BODY) -> bytes:
    """A plain heartbeat post: one Content-Length and ``headers``."""
    return post(f"Content-Length: {len(body)}", *headers, body=body)


def test_a_plain_post_is_served_with_its_headers_body_and_size() -> None:
    request = plain("X-Host-Token: t0k3n", "Content-Type: application/json")
    got = frame(request + b"GET / HTTP/1.1\r\n", LIMIT)
    assert isinstance(got, HeartbeatPost)
    assert got.body == BODY
    assert got.size == len(request)
    assert got.keep_alive
    assert got.headers["x-host-token"] == "t0k3n"
    assert got.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("request_bytes", "keep_alive"),
    [
        (plain("Connection: close"), False),
        (plain().replace(b"HTTP/1.1", b"HTTP/1.0"), False),
        (plain("Connection: keep-alive").replace(b"HTTP/1.1", b"HTTP/1.0"), True),
    ],
)
def test_keep_alive_follows_the_request(request_bytes: bytes, keep_alive: bool) -> None:
    got = frame(request_bytes, LIMIT)
    assert isinstance(got, HeartbeatPost)
    assert got.keep_alive is keep_alive


def test_every_prefix_of_a_plain_post_asks_for_more() -> None:
    request = plain("X-Host-Token: t")
    for cut in range(1, len(request)):
        assert frame(request[:cut], LIMIT) is MORE, cut
    assert isinstance(frame(request, LIMIT), HeartbeatPost)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\n\r\n",
        b"POST /api/events HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /api/agent/heartbeats HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        plain().replace(b"heartbeat HTTP", b"heartbeat?x=1 HTTP"),
        b"post /api/agent/heartbeat HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        post("Transfer-Encoding: chunked", body=b"2\r\n{}\r\n0\r\n\r\n"),
        post("Content-Length: 15", "Transfer-Encoding: chunked"),
        post("Content-Length: 15", "Content-Length: 15"),
        post("Content-Length: +15"),
        post("Content-Length: 0x0f"),
        post(),  # no length: no body as far as HTTP goes
        post("Content-Length: 0", body=b""),
        plain("Expect: 100-continue"),
        plain("Upgrade: websocket", "Connection: Upgrade"),
        post(f"Content-Length: {LIMIT.body_bytes + 1}", body=b"x" * (LIMIT.body_bytes + 1)),
        plain().replace(b"\r\n", b"\n"),  # bare line feeds: uvicorn's parser decides
        # ... and its own limits (bounded_httptools.py), however long the body
        plain(body=b"x" * LIMIT.head_bytes).replace(b"\r\n", b"\n"),
        plain("Bad Header: x"),
    ],
)
def test_anything_but_a_plain_post_is_left_to_uvicorn(request_bytes: bytes) -> None:
    assert frame(request_bytes, LIMIT) is OTHER


def test_a_body_longer_than_its_length_leaves_the_rest_as_the_next_request() -> None:
    request = post("Content-Length: 4", body=b"abcdGET / HTTP/1.1\r\n\r\n")
    got = frame(request, LIMIT)
    assert isinstance(got, HeartbeatPost)
    assert got.body == b"abcd"
    assert frame(request[got.size :], LIMIT) is OTHER


def test_a_head_seen_before_is_not_parsed_again() -> None:
    heads: dict[bytes, Head] = {}
    first = frame(plain("X-Host-Token: t", body=b'{"a":1}'), LIMIT, heads)
    again = frame(plain("X-Host-Token: t", body=b'{"b":2}'), LIMIT, heads)
    assert isinstance(first, HeartbeatPost)
    assert isinstance(again, HeartbeatPost)
    assert again.head is first.head  # from the remembered heads
    assert again.body == b'{"b":2}'
    assert again.size == first.size
    longer = frame(plain("X-Host-Token: t", body=b'{"ab":12}'), LIMIT, heads)
    assert isinstance(longer, HeartbeatPost)
    assert longer.head is not first.head  # another Content-Length: another head
    assert longer.body == b'{"ab":12}'
    assert len(heads) == 2


def test_a_known_head_still_waits_for_its_whole_body() -> None:
    heads: dict[bytes, Head] = {}
    request = plain("X-Host-Token: t")
    assert isinstance(frame(request, LIMIT, heads), HeartbeatPost)
    for cut in range(len(request) - len(BODY), len(request)):
        assert frame(request[:cut], LIMIT, heads) is MORE, cut
    got = frame(request + b"GET / HTTP/1.1\r\n\r\n", LIMIT, heads)
    assert isinstance(got, HeartbeatPost)
    assert got.body == BODY
    assert got.size == len(request)


def test_the_connections_last_head_is_used_without_a_lookup() -> None:
    first = frame(plain("X-Host-Token: t"), LIMIT)
    assert isinstance(first, HeartbeatPost)
    again = frame(plain("X-Host-Token: t"), LIMIT, None, first.head)
    assert isinstance(again, HeartbeatPost)
    assert again.head is first.head
    other = frame(plain("X-Host-Token: u"), LIMIT, None, first.head)
    assert isinstance(other, HeartbeatPost)
    assert other.headers["x-host-token"] == "u"


def test_only_plain_heads_of_bounded_size_and_number_are_remembered() -> None:
    heads: dict[bytes, Head] = {}
    assert frame(plain("Expect: 100-continue"), LIMIT, heads) is OTHER
    assert frame(plain("X: " + "y" * MAX_KNOWN_HEAD_BYTES), LIMIT, heads) is not OTHER
    assert heads == {}
    for n in range(MAX_KNOWN_HEADS + 10):
        assert isinstance(frame(plain(f"X-N: {n}"), LIMIT, heads), HeartbeatPost)
        assert len(heads) <= MAX_KNOWN_HEADS


def test_an_answer_is_one_http_response() -> None:
    reply = Reply(401, b'{"error":"no"}', ((b"www-authenticate", b"Bearer"),))
    wire = encode(reply, [(b"date", b"Sun, 22 Nov 2026 13:00:00 GMT")], keep_alive=False)
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 401 Unauthorized"
    assert set(lines[1:]) == {
        b"date: Sun, 22 Nov 2026 13:00:00 GMT",
        b"www-authenticate: Bearer",
        b"content-type: application/json",
        b"content-length: 14",
        b"connection: close",
    }
    assert body == b'{"error":"no"}'
    assert b"connection" not in encode(Reply(200, b"{}"), [], keep_alive=True)


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "unfinished"])
def test_a_head_over_the_size_limit_is_refused_whole_or_not(whole: bool) -> None:
    request = plain("X-Big: " + "y" * LIMIT.head_bytes)
    assert frame(request if whole else request[: LIMIT.head_bytes + 1], LIMIT) is HEAD_TOO_LARGE
    # One byte under the limit is still a head that may end.
    assert frame(request[: LIMIT.head_bytes], LIMIT) is MORE


def test_a_head_at_the_size_limit_is_served() -> None:
    filler = "X-Fill: "
    request = plain(filler)
    head_size = request.index(b"\r\n\r\n") + 4
    exact = plain(filler + "y" * (LIMIT.head_bytes - head_size))
    assert exact.index(b"\r\n\r\n") + 4 == LIMIT.head_bytes
    assert isinstance(frame(exact, LIMIT), HeartbeatPost)
    assert frame(plain(filler + "y" * (LIMIT.head_bytes - head_size + 1)), LIMIT) is HEAD_TOO_LARGE


def test_a_head_over_the_header_count_is_refused() -> None:
    # Host and Content-Length are two of them.
    at_limit = [f"X-N{n}: v" for n in range(LIMIT.headers - 2)]
    assert isinstance(frame(plain(*at_limit), LIMIT), HeartbeatPost)
    assert frame(plain(*at_limit, "X-One-More: v"), LIMIT) is TOO_MANY_HEADERS
    # Repeated names count each time.
    assert frame(plain(*["X-Same: v"] * (LIMIT.headers - 1)), LIMIT) is TOO_MANY_HEADERS
