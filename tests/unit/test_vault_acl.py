"""The vault ACL: the seed's example, deny wins, default deny, globs."""

from __future__ import annotations

import pytest

from vaultmesh.services.vault.acl import Policy, glob_to_regex, parse_policy
from vaultmesh.shared.config import ConfigError

# The seed's example config.yaml, verbatim (only its `acl` list is read).
SEED_CONFIG = """
nats:
  url: nats://nats-server:4222
  user: vault
  pass: secret

encryption:
  master_key: /app/config/master.key

subjects:
  request: vault.requests
  reply: vault.replies

acl:
  - subject: admin.requests
    operations: [get, set, delete, list, rotate, status]
  - subject: user.requests
    operations: [get, set]
"""


def test_the_seed_example_is_expressible_verbatim() -> None:
    policy = parse_policy(SEED_CONFIG, "seed")
    for op in ("get", "set", "delete"):
        assert policy.allows("admin", op, "any/key")
    for op in ("list", "rotate", "status"):
        assert policy.may("admin", op)
    assert policy.allows("user", "get", "mysecret")
    assert policy.allows("user", "set", "mysecret")
    assert not policy.allows("user", "delete", "mysecret")
    assert not policy.may("user", "rotate")
    assert not policy.may("user", "list")


def test_default_deny() -> None:
    policy = parse_policy(SEED_CONFIG, "seed")
    assert not policy.allows("stranger", "get", "mysecret")
    assert not policy.may("stranger", "status")
    assert not Policy().allows("admin", "get", "k")
    assert not Policy().may("admin", "status")


DENY = """
acl:
  - principal: "*"
    operations: ["*"]
    keys: ["shared/**"]
  - principal: bob
    operations: [get, set, list]
    keys: ["apps/*/config", "bob/**"]
  - principal: "*"
    effect: deny
    operations: [set]
    keys: ["shared/locked/**"]
  - principal: bob
    effect: deny
    operations: [get]
    keys: ["bob/private/?"]
"""


def test_deny_wins_over_allow() -> None:
    policy = parse_policy(DENY, "deny")
    assert policy.allows("bob", "set", "shared/open")
    assert not policy.allows("bob", "set", "shared/locked/x")
    assert policy.allows("bob", "get", "shared/locked/x")
    assert policy.allows("bob", "get", "bob/private/ab")
    assert not policy.allows("bob", "get", "bob/private/a")


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("apps/web/config", True),
        ("apps/web/extra/config", False),  # * stays inside one segment
        ("bob/a/b/c", True),  # ** spans segments
        ("bob", False),
        ("bobby/x", False),
    ],
)
def test_globs(key: str, allowed: bool) -> None:
    assert parse_policy(DENY, "deny").allows("bob", "get", key) is allowed


def test_keyless_operations_are_only_denied_by_rules_covering_every_key() -> None:
    text = """
acl:
  - principal: ops
    operations: [status, rotate, list]
  - principal: ops
    effect: deny
    operations: [rotate]
  - principal: ops
    effect: deny
    operations: [list]
    keys: ["secret/**"]
"""
    policy = parse_policy(text, "t")
    assert policy.may("ops", "status")
    assert not policy.may("ops", "rotate")
    assert policy.may("ops", "list")
    assert policy.allows("ops", "list", "public/x")
    assert not policy.allows("ops", "list", "secret/x")


def test_glob_regex_escapes_literals() -> None:
    assert glob_to_regex("a.b").fullmatch("a.b")
    assert not glob_to_regex("a.b").fullmatch("axb")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("acl: [{principal: a, operations: [frobnicate]}]", "unknown operations"),
        ("acl: [{principal: a, subject: a.requests, operations: [get]}]", "exactly one"),
        ("acl: [{operations: [get]}]", "exactly one"),
        ("acl: [{subject: admin, operations: [get]}]", "<principal>.requests"),
        ("acl: [{principal: 'a.b', operations: [get]}]", "subject token"),
        ("acl: [{principal: a, operations: []}]", "operations"),
        ("acl: [{principal: a, operations: [get], keys: ['a b']}]", "key globs"),
        ("acl: [{principal: a, operations: [get], colour: red}]", "colour"),
        ("acl: [{principal: a, operations: [get], effect: maybe}]", "effect"),
        ("acl: {not: a list}", "acl"),
        ("- [unbalanced", "not valid YAML"),
        ("42", "mapping"),
    ],
)
def test_invalid_policies_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "policy.yaml")
    assert str(info.value).startswith("policy.yaml")
    assert fragment in str(info.value)


def test_empty_file_is_deny_all() -> None:
    assert parse_policy("", "empty").rules == ()
