"""Keyring, AES-256-GCM sealing with associated data, and the master key format."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vaultmesh.services.vault import masterkey
from vaultmesh.services.vault.config import VaultSettings
from vaultmesh.services.vault.errors import IntegrityError, KeyringError
from vaultmesh.services.vault.keyring import Keyring, associated_data
from vaultmesh.shared.config import ConfigError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _keyring(master: bytes | None = None, terms: int = 1) -> Keyring:
    ring = Keyring(master or masterkey.generate())
    for term in range(1, terms + 1):
        ring.load([ring.create(term, NOW)])
    return ring


def test_seal_and_open_round_trip() -> None:
    ring = _keyring()
    sealed = ring.seal("db/password", 1, b"hunter2")
    assert sealed.term == 1
    assert len(sealed.nonce) == 12
    assert b"hunter2" not in sealed.ciphertext
    assert ring.open("db/password", 1, sealed) == b"hunter2"


def test_nonces_are_fresh() -> None:
    ring = _keyring()
    nonces = {ring.seal("k", 1, b"v").nonce for _ in range(200)}
    assert len(nonces) == 200


@pytest.mark.parametrize(("path", "version"), [("db/other", 1), ("db/password", 2)])
def test_associated_data_binds_path_and_version(path: str, version: int) -> None:
    ring = _keyring()
    sealed = ring.seal("db/password", 1, b"hunter2")
    with pytest.raises(IntegrityError, match="integrity"):
        ring.open(path, version, sealed)


def test_associated_data_is_unambiguous() -> None:
    assert associated_data("a", 12) != associated_data("a\x00", 12)
    assert associated_data("ab", 1) != associated_data("a", 1)


def test_tampered_ciphertext_fails_its_integrity_check() -> None:
    ring = _keyring()
    sealed = ring.seal("k", 1, b"value")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(IntegrityError):
        ring.open("k", 1, replace(sealed, ciphertext=flipped))
    with pytest.raises(IntegrityError):
        ring.open("k", 1, replace(sealed, nonce=b"\x00" * 12))


def test_new_terms_seal_new_writes_and_old_ones_still_open() -> None:
    ring = _keyring()
    old = ring.seal("k", 1, b"old")
    ring.load([ring.create(2, NOW)])
    assert ring.active == 2
    new = ring.seal("k", 2, b"new")
    assert new.term == 2
    assert ring.open("k", 1, old) == b"old"
    assert ring.open("k", 2, new) == b"new"


def test_unknown_term() -> None:
    ring = _keyring()
    sealed = ring.seal("k", 1, b"v")
    with pytest.raises(KeyringError, match="term 9"):
        ring.open("k", 1, replace(sealed, term=9))
    with pytest.raises(KeyringError, match="term 9"):
        ring.seal("k", 1, b"v", term=9)


def test_terms_are_sealed_by_the_master_key() -> None:
    master = masterkey.generate()
    writer = Keyring(master)
    record = writer.create(1, NOW)
    assert len(record.sealed_key) == 32 + 16
    reader = Keyring(master)
    reader.load([record])
    assert reader.open("k", 1, _sealed_with(writer, record)) == b"v"
    with pytest.raises(KeyringError, match="wrong master key"):
        Keyring(masterkey.generate()).load([record])


def _sealed_with(writer: Keyring, record: object) -> object:
    writer.load([record])  # type: ignore[list-item]
    return writer.seal("k", 1, b"v")


def test_the_audit_hmac_key_comes_from_the_first_term_not_the_master_key() -> None:
    master = masterkey.generate()
    ring = _keyring(master, terms=3)
    derived = ring.audit_key
    assert len(derived) == 32
    assert derived != master
    # Every reader of the same terms, in any order, derives the same key.
    records = [ring.create(1, NOW)]  # a different term 1: a different key
    other = Keyring(master)
    other.load(records)
    assert other.audit_key != derived
    with pytest.raises(KeyringError, match="no key term"):
        _ = Keyring(master).audit_key


def test_a_previous_master_key_opens_old_terms_and_they_are_sealed_anew() -> None:
    old_master, new_master = masterkey.generate(), masterkey.generate()
    writer = Keyring(old_master)
    records = [writer.create(term, NOW) for term in (1, 2)]
    writer.load(records)
    sealed = writer.seal("k", 1, b"secret", term=1)

    rotated = Keyring(new_master, old_master)
    resealed = rotated.load(records)
    assert [r.old for r in resealed] == records
    assert rotated.open("k", 1, sealed) == b"secret"
    assert rotated.audit_key == writer.audit_key  # key-name HMACs survive the change
    for pair in resealed:
        assert pair.new.term == pair.old.term
        assert pair.new.created == pair.old.created
        assert pair.new.nonce != pair.old.nonce
    # The re-sealed terms open with the new master key alone; the old one no longer does.
    alone = Keyring(new_master)
    assert alone.load([pair.new for pair in resealed]) == []
    assert alone.open("k", 1, sealed) == b"secret"
    with pytest.raises(KeyringError, match="wrong master key"):
        Keyring(old_master).load([resealed[0].new])


def test_terms_already_under_the_master_key_are_not_resealed() -> None:
    old_master, new_master = masterkey.generate(), masterkey.generate()
    mixed = [Keyring(new_master).create(1, NOW), Keyring(old_master).create(2, NOW)]
    resealed = Keyring(new_master, old_master).load(mixed)
    assert [pair.old.term for pair in resealed] == [2]


def test_a_term_neither_key_opens_is_an_error_naming_both() -> None:
    record = Keyring(masterkey.generate()).create(1, NOW)
    ring = Keyring(masterkey.generate(), masterkey.generate())
    with pytest.raises(KeyringError, match="neither the master key nor the previous"):
        ring.load([record])


def test_master_key_text_formats() -> None:
    key = masterkey.generate()
    assert masterkey.parse(masterkey.encode(key) + "\n", "x") == key
    assert masterkey.parse(key.hex(), "x") == key
    assert masterkey.parse(base64.urlsafe_b64encode(key).decode(), "x") == key


@pytest.mark.parametrize("text", ["", "short", "A" * 43, base64.b64encode(b"x" * 31).decode()])
def test_bad_master_keys_name_the_source_not_the_content(text: str) -> None:
    with pytest.raises(ConfigError, match="SOURCE: not a 256-bit key") as info:
        masterkey.parse(text, "SOURCE")
    if text:
        assert text not in str(info.value)


def test_master_key_from_the_environment_variable() -> None:
    key = masterkey.generate()
    settings = VaultSettings(vault_master_key=masterkey.encode(key))
    assert masterkey.load(settings) == key
    assert masterkey.encode(key) not in repr(settings)


def test_no_master_key_is_a_clear_config_error() -> None:
    settings = VaultSettings(vault_secrets_dir="/nonexistent-vaultmesh-test")
    with pytest.raises(ConfigError, match="no master key"):
        masterkey.load(settings)


def test_the_previous_master_key_is_optional_and_read_like_the_master_key(tmp_path: Path) -> None:
    master, previous = masterkey.generate(), masterkey.generate()
    assert masterkey.load_previous(VaultSettings(vault_secrets_dir=tmp_path), master) is None
    from_env = VaultSettings(vault_previous_master_key=masterkey.encode(previous))
    assert masterkey.load_previous(from_env, master) == previous
    assert masterkey.encode(previous) not in repr(from_env)
    (tmp_path / "vault_master_key_previous").write_text(masterkey.encode(previous))
    from_secret = VaultSettings(vault_secrets_dir=tmp_path)
    assert masterkey.load_previous(from_secret, master) == previous
    with pytest.raises(ConfigError, match="PREVIOUS_MASTER_KEY: not a 256-bit key"):
        masterkey.load_previous(VaultSettings(vault_previous_master_key="nope"), master)
    # The master key itself as the previous one (the stack's default) is no previous key.
    assert masterkey.load_previous(from_env, previous) is None
