"""Reading the replies to fast-ingest batches (pure logic; the bus side is in integration)."""

from __future__ import annotations

from typing import Any

from nats.aio.msg import Msg

from vaultmesh.shared.fastpub import batch_count, not_batched


def reply(data: bytes, headers: dict[str, str] | None = None) -> Msg:
    client: Any = None
    return Msg(_client=client, subject="_INBOX.x.1", data=data, headers=headers)


def test_a_batch_ack_counts_what_was_stored() -> None:
    msg = reply(b'{"stream":"AUDIT","seq":9,"batch":"1","count":3}')
    assert batch_count(msg, 3) == 3
    assert batch_count(msg, 5) == 3  # abandoned after three: two to retry
    assert batch_count(msg, 2) == 2  # never more than was sent


def test_errors_and_no_stream_store_nothing() -> None:
    error = reply(b'{"error":{"code":400,"err_code":10205,"description":"x"},"stream":"A","seq":0}')
    assert batch_count(error, 4) == 0
    assert batch_count(reply(b"", {"Status": "503"}), 4) == 0
    assert batch_count(reply(b"not json"), 4) == 0
    assert batch_count(reply(b'{"stream":"A","seq":1,"count":"3"}'), 4) == 0


def test_a_plain_ack_counts_only_for_an_unbatched_publish() -> None:
    plain = reply(b'{"stream":"AUDIT","seq":9}')
    assert batch_count(plain, 1, batched=False) == 1
    assert batch_count(plain, 3) == 0  # a server without batches answered message 1 only


def test_not_batched_recognises_the_batch_errors_only() -> None:
    for code in (10205, 10206, 10207, 10208):
        assert not_batched(reply(b'{"error":{"code":400,"err_code":%d},"seq":0}' % code))
    assert not not_batched(reply(b'{"error":{"code":503,"err_code":10077},"seq":0}'))
    assert not not_batched(reply(b'{"stream":"A","seq":1,"batch":"1","count":1}'))
    assert not not_batched(reply(b'{"error": broken'))
