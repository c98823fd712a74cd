"""The vault's access policy: which principal may do which operation on which key paths.

A policy file is YAML with a list under ``acl`` (other top-level keys are
ignored, so the seed's whole ``config.yaml`` loads as is)::

    acl:
      - principal: admin                # or seed style: `subject: admin.requests`
        operations: ["*"]               # get set delete list rotate status, or "*"
        keys: ["**"]                    # globs: * within a segment, ** across "/", ? one char
      - subject: user.requests          # the seed's example, verbatim
        operations: [get, set]
      - principal: "*"                  # every principal
        effect: deny                    # deny wins over any allow
        operations: [delete]
        keys: ["prod/**"]

Anything not allowed is denied. For operations without a key (``rotate``,
``status``, and ``list`` as a whole) only rules covering every key (``**``) can
deny; ``list`` then shows only the keys the principal may list.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vaultmesh.services.vault.models import OPERATIONS
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.validation import describe

log = logging.getLogger(__name__)
ANY = "*"
ALL_KEYS = "**"
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_GLOB = re.compile(r"^[A-Za-z0-9_\-.:@=+/*?]{1,256}$")
_SEED_SUFFIX = ".requests"


class RuleSpec(BaseModel):
    """One rule as written in the policy file."""

    model_config = ConfigDict(extra="forbid")

    principal: str | None = None
    subject: str | None = None
    operations: Annotated[list[str], Field(min_length=1)]
    keys: Annotated[list[str], Field(min_length=1)] = [ALL_KEYS]
    effect: Literal["allow", "deny"] = "allow"

    @model_validator(mode="after")
    def _check(self) -> RuleSpec:
        if (self.principal is None) == (self.subject is None):
            raise ValueError("give exactly one of `principal` or `subject`")
        name = self.who
        if name != ANY and not _NAME.match(name):
            raise ValueError("a principal is one subject token (A-Z a-z 0-9 _ -) or '*'")
        unknown = [op for op in self.operations if op != ANY and op not in OPERATIONS]
        if unknown:
            raise ValueError(f"unknown operations {unknown}; use {list(OPERATIONS)} or '*'")
        if not all(_GLOB.match(glob) for glob in self.keys):
            raise ValueError("key globs use A-Z a-z 0-9 _ - . : @ = + / and * ** ?")
        return self

    @property
    def who(self) -> str:
        """The principal this rule is about (seed ``<principal>.requests`` subjects mapped)."""
        if self.principal is not None:
            return self.principal
        assert self.subject is not None
        if not self.subject.endswith(_SEED_SUFFIX):
            raise ValueError("a seed-style subject must look like `<principal>.requests`")
        return self.subject[: -len(_SEED_SUFFIX)]


class PolicyFile(BaseModel):
    """The policy file: only ``acl`` is read."""

    model_config = ConfigDict(extra="ignore")

    acl: list[RuleSpec] = []


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """Compile a key glob: ``**`` spans segments, ``*`` and ``?`` stay inside one."""
    parts: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith(ALL_KEYS, i):
            parts.append(".*")
            i += 2
            continue
        char = glob[i]
        parts.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        i += 1
    return re.compile("".join(parts))


@dataclass(frozen=True)
class Rule:
    """A compiled rule."""

    principal: str
    operations: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    everything: bool
    allow: bool

    def applies(self, principal: str, op: str) -> bool:
        """Whether this rule speaks about ``principal`` doing ``op``."""
        return self.principal in (ANY, principal) and (
            ANY in self.operations or op in self.operations
        )

    def covers(self, key: str) -> bool:
        """Whether ``key`` matches one of this rule's globs."""
        return self.everything or any(p.fullmatch(key) for p in self.patterns)


def _compile(spec: RuleSpec) -> Rule:
    return Rule(
        principal=spec.who,
        operations=frozenset(spec.operations),
        patterns=tuple(glob_to_regex(glob) for glob in spec.keys),
        everything=ALL_KEYS in spec.keys,
        allow=spec.effect == "allow",
    )


class Policy:
    """An immutable, compiled policy; default deny, deny wins."""

    def __init__(self, specs: Iterable[RuleSpec] = ()) -> None:
        self.rules = tuple(_compile(spec) for spec in specs)
        # Decisions are pure functions of the (immutable) policy, so cache the hot ones.
        self.allows = lru_cache(maxsize=8192)(self._allows)

    def _allows(self, principal: str, op: str, key: str) -> bool:
        allowed = False
        for rule in self.rules:
            if rule.applies(principal, op) and rule.covers(key):
                if not rule.allow:
                    return False
                allowed = True
        return allowed

    def may(self, principal: str, op: str) -> bool:
        """Whether ``principal`` may do key-less ``op`` (or ``list`` at all)."""
        allowed = False
        for rule in self.rules:
            if not rule.applies(principal, op):
                continue
            if not rule.allow and rule.everything:
                return False
            allowed = allowed or rule.allow
        return allowed


def parse_policy(text: str, source: str) -> Policy:
    """Parse policy YAML; ConfigError naming ``source`` and the bad rule fields."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{source}: not valid YAML") from None
    if loaded is None:
        loaded = {}
    if isinstance(loaded, list):
        loaded = {"acl": loaded}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source}: must hold a mapping with an `acl` list")
    try:
        return Policy(PolicyFile.model_validate(loaded).acl)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid policy: {describe(exc)}") from None


def load_policy(path: Path) -> Policy:
    """Read and parse the policy file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"VAULTMESH_VAULT_ACL_FILE: cannot read {path}: {exc.strerror}") from None
    return parse_policy(text, str(path))


class PolicyHolder:
    """The policy in force, reloadable from its file (on SIGHUP) without a restart."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is None:
            log.warning("no ACL file (VAULTMESH_VAULT_ACL_FILE); every request is denied")
        self.policy = Policy() if path is None else load_policy(path)

    def reload(self) -> bool:
        """Re-read the file; on any error keep the policy in force and return False."""
        if self.path is None:
            return False
        try:
            self.policy = load_policy(self.path)
        except ConfigError as exc:
            log.error("ACL reload failed; keeping the previous policy", extra={"error": str(exc)})
            return False
        log.info("ACL reloaded", extra={"rules": len(self.policy.rules)})
        return True
