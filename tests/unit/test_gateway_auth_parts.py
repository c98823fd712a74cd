"""Tokens, session cookies, cursors and small gateway helpers (no I/O)."""

from __future__ import annotations

import pytest

from vaultmesh.services.gateway.auth.login import safe_next
from vaultmesh.services.gateway.auth.sessions import SessionSigner
from vaultmesh.services.gateway.auth.tokens import TokenSet
from vaultmesh.services.gateway.bodies import _is_json
from vaultmesh.services.gateway.config import load_tokens
from vaultmesh.services.gateway.live.cursor import Cursor, parse_cursor
from vaultmesh.services.gateway.live.feeds import Item
from vaultmesh.services.gateway.live.sse import advance, frame
from vaultmesh.shared.clock import ManualClock
from vaultmesh.shared.config import ConfigError

A = "first-admin-token-0123456789"
B = "second-admin-token-0123456789"


def test_token_set_matches_exact_tokens_only() -> None:
    tokens = TokenSet((A, B))
    assert tokens.match(A) == 0
    assert tokens.match(B) == 1
    for wrong in ("", A[:-1], A + "x", A.upper(), "x" * 5000):
        assert tokens.match(wrong) is None
    assert TokenSet(()).match(A) is None


def test_load_tokens_splits_dedupes_and_refuses_short_ones() -> None:
    assert load_tokens(f" {A}, {B},{A},", None, "VAULTMESH_ADMIN_TOKENS") == (A, B)
    with pytest.raises(ConfigError, match="VAULTMESH_ADMIN_TOKENS: token #2 is shorter"):
        load_tokens(f"{A},short", None, "VAULTMESH_ADMIN_TOKENS")


def test_sessions_verify_until_they_expire() -> None:
    clock = ManualClock()
    signer = SessionSigner((A, B), ttl_s=3600, clock=clock)
    cookie = signer.issue(1)
    assert signer.verify(cookie) == 1
    clock.advance(3599)
    assert signer.verify(cookie) == 1
    clock.advance(2)
    assert signer.verify(cookie) is None


def test_a_revoked_session_is_refused_and_forgotten_once_expired() -> None:
    clock = ManualClock()
    signer = SessionSigner((A,), ttl_s=3600, clock=clock)
    cookie, other = signer.issue(0), signer.issue(0)
    session = signer.check(cookie)
    assert session is not None
    assert (session.token_index, session.session_id) == (0, cookie.split(".")[2])
    signer.revoked.add(session.session_id, session.expires)
    assert signer.verify(cookie) is None
    assert signer.check(cookie) is None
    assert signer.verify(other) == 0  # only that session ended
    clock.advance(3601)
    signer.revoked.prune()
    assert len(signer.revoked) == 0


def test_sessions_die_with_their_token_and_refuse_tampering() -> None:
    clock = ManualClock()
    cookie = SessionSigner((A, B), ttl_s=3600, clock=clock).issue(0)
    assert SessionSigner((B,), ttl_s=3600, clock=clock).verify(cookie) is None
    signer = SessionSigner((A,), ttl_s=3600, clock=clock)
    version, expiry, nonce, mac = cookie.split(".")
    later = str(int(expiry) + 10**6)
    for forged in (
        f"{version}.{later}.{nonce}.{mac}",
        f"{version}.{expiry}.{nonce}x.{mac}",
        f"{version}.{expiry}.{nonce}.{mac[:-2]}",
        f"v2.{expiry}.{nonce}.{mac}",
        A,
        "",
        "a" * 1000,
    ):
        assert signer.verify(forged) is None
    assert A not in cookie


def test_cursor_round_trip_and_rejects() -> None:
    cursor = Cursor(12, 3400)
    assert parse_cursor(cursor.encode()) == cursor
    assert parse_cursor(" 0.0 ") == Cursor()
    for bad in ("", "1", "1.2.3", "-1.2", "a.b", "1.2x", "99999999999999999999.1"):
        assert parse_cursor(bad) is None
    assert cursor.after_event(13) == Cursor(13, 3400)
    assert cursor.after_heartbeat(3000) == cursor  # never moves backwards
    assert Cursor(50, 50).clamped(10, 60) == Cursor(10, 50)


def test_frames_carry_id_event_and_one_data_line() -> None:
    item = Item("note", b'{"a":1}', "events", 7)
    cursor = advance(Cursor(6, 2), item)
    assert cursor == Cursor(7, 2)
    assert frame(item, cursor) == b'id: 7.2\nevent: note\ndata: {"a":1}\n\n'
    assert advance(Cursor(7, 2), item) is None  # already delivered
    beat = Item("heartbeat", b"{}", "heartbeats", 3)
    assert advance(Cursor(7, 2), beat) == Cursor(7, 3)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "/"),
        ("/console?node=1", "/console?node=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("console", "/"),
        ("/\t/evil.example", "/"),
        ("/ok path", "/"),
    ],
)
def test_login_only_redirects_within_the_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        (None, True),
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
    ],
)
def test_json_content_types(content_type: str | None, ok: bool) -> None:
    assert _is_json(content_type) is ok
