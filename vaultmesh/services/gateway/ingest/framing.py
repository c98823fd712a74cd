"""The bytes of the heartbeat hot path: plain posts framed from a buffer, answers encoded.

A *plain* heartbeat post is

    POST /api/agent/heartbeat HTTP/1.x, exactly one Content-Length (1 byte up to
    the body limit), no Transfer-Encoding, no Expect, no Upgrade

and ``frame`` finds one at the start of a connection's buffer, or says to wait
for more bytes (MORE), that its head is over the limits (HEAD_TOO_LARGE,
TOO_MANY_HEADERS: refused here) or that the request is anything else (OTHER:
uvicorn's turn, see frontdoor.py). Framing is httptools' decision, not a hand-written
one: a head is parsed by a fresh httptools parser, and a request is framed here
only when that parser ends the message exactly at head + Content-Length bytes.
What a head says is remembered by its bytes (the connection's last head, and
up to 4096 heads of the app, each at most 2 KiB): agents repeat their head but
for Content-Length, and an identical head is not parsed again. ``encode``
writes a whole HTTP/1.1 answer in one piece.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import httptools

from vaultmesh.services.gateway.httpserver.limits import HttpLimits
from vaultmesh.services.gateway.ingest.contract import PATH

_START = f"POST {PATH} HTTP/1.".encode()
_HEAD_END = b"\r\n\r\n"
MAX_KNOWN_HEADS = 4096  # heads remembered, so they are not parsed again (see frame)
MAX_KNOWN_HEAD_BYTES = 2048
_NOT_PLAIN = frozenset({b"transfer-encoding", b"expect", b"upgrade"})
# HttpParserUpgrade is not an HttpParserError.
_PARSE_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)


class _Parsed:
    """httptools callbacks for one request: its headers and body, and how far it got."""

    __slots__ = (
        "begun",
        "body",
        "complete",
        "count",
        "headers",
        "headers_done",
        "lengths",
        "plain",
    )

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.lengths: list[bytes] = []
        self.plain = True
        self.count = 0  # header fields, repeated ones included
        self.begun = 0
        self.headers_done = False
        self.complete = False

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count += 1
        name = name.lower()
        if name == b"content-length":
            self.lengths.append(value)
        elif name in _NOT_PLAIN:
            self.plain = False
        # Latin-1, and the first of repeated headers wins: as starlette's Headers reads them.
        self.headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


@dataclass(frozen=True, slots=True)
class Head:
    """What the head of a plain heartbeat post says (and its bytes, to know it again)."""

    raw: bytes  # the request line and headers, up to and with the blank line
    headers: Mapping[str, str]  # lower-case names; read-only, as requests share it
    keep_alive: bool
    length: int  # of the body (Content-Length)


@dataclass(frozen=True, slots=True)
class HeartbeatPost:
    """One plain heartbeat post, read whole: its head and its body."""

    head: Head
    body: bytes

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers, by lower-case name."""
        return self.head.headers

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after the answer."""
        return self.head.keep_alive

    @property
    def size(self) -> int:
        """How many bytes of the buffer the request took."""
        return len(self.head.raw) + self.head.length


class Verdict(enum.Enum):
    """What the buffer holds when it is not (yet) a plain heartbeat post."""

    MORE = "more"  # the start of a plain heartbeat post: wait for more bytes
    OTHER = "other"  # anything else: uvicorn's turn
    HEAD_TOO_LARGE = "head_too_large"  # a heartbeat post's head over the limit: refuse it
    TOO_MANY_HEADERS = "too_many_headers"  # likewise for its number of headers


MORE, OTHER = Verdict.MORE, Verdict.OTHER
HEAD_TOO_LARGE, TOO_MANY_HEADERS = Verdict.HEAD_TOO_LARGE, Verdict.TOO_MANY_HEADERS


def frame(
    buf: bytes | bytearray,
    limits: HttpLimits,
    heads: dict[bytes, Head] | None = None,
    last: Head | None = None,
) -> HeartbeatPost | Verdict:
    """The plain heartbeat post at the start of ``buf``, or a Verdict on what it holds.

    ``heads``: heads parsed before, by their bytes; ``last``: the head of the
    connection's previous post. Agents send the same head again and again
    (same client, host and token; only Content-Length varies), and a head
    byte-for-byte equal to one parsed before is not parsed again: the parser
    would say the same of it (nor checked again: it was within the limits).
    """
    if last is not None and buf.startswith(last.raw):
        return _body(buf, last)
    if not buf.startswith(_START):
        return MORE if len(buf) < len(_START) and _START.startswith(buf) else OTHER
    end = buf.find(_HEAD_END)
    head_size = len(buf) if end < 0 else end + len(_HEAD_END)
    if heads is not None and end >= 0:
        known = heads.get(bytes(memoryview(buf)[:head_size]))
        if known is not None:
            return _body(buf, known)
    # Any line end but CRLF has a bare line feed: then where the head ends is uvicorn's
    # parser's call. Without one in its first head_bytes + 1 bytes, a head that has
    # not ended there is over the limit.
    scanned = min(head_size, limits.head_bytes + 1)
    if buf.count(b"\n", 0, scanned) != buf.count(b"\r\n", 0, scanned):
        return OTHER
    if head_size > limits.head_bytes:
        return HEAD_TOO_LARGE
    if end < 0:
        return MORE
    parsed = _Parsed()
    parser = httptools.HttpRequestParser(parsed)
    try:
        parser.feed_data(buf[:head_size])
    except _PARSE_ERRORS:
        return OTHER
    if not (parsed.headers_done and parsed.plain and parsed.begun == 1 and not parsed.complete):
        return OTHER
    if parsed.count > limits.headers:
        return TOO_MANY_HEADERS
    keep_alive = parser.should_keep_alive()  # read now: the message's end resets it
    if len(parsed.lengths) != 1 or not parsed.lengths[0].isdigit():
        return OTHER
    length = int(parsed.lengths[0])
    if not 0 < length <= limits.body_bytes:
        return OTHER
    size = head_size + length
    if len(buf) < size:
        return MORE
    try:
        parser.feed_data(buf[head_size:size])
    except _PARSE_ERRORS:
        return OTHER
    body = b"".join(parsed.body)
    if not parsed.complete or parsed.begun != 1 or len(body) != length:
        return OTHER
    head = Head(bytes(buf[:head_size]), MappingProxyType(parsed.headers), keep_alive, length)
    if heads is not None and head_size <= MAX_KNOWN_HEAD_BYTES:
        if len(heads) >= MAX_KNOWN_HEADS:
            heads.clear()  # many distinct heads: start again rather than grow
        heads[head.raw] = head
    return HeartbeatPost(head, body)


def _body(buf: bytes | bytearray, head: Head) -> HeartbeatPost | Verdict:
    """The post at the start of ``buf`` whose head is ``head``, once its body is all here."""
    start = len(head.raw)
    end = start + head.length
    if len(buf) < end:
        return MORE
    return HeartbeatPost(head, bytes(buf[start:end]))
