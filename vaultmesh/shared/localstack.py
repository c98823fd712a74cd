"""What ``vaultmesh up`` runs: service discovery, per-process environment, tokens, readiness.

Discovery follows the cross-team contract: every package under
``vaultmesh/services/`` with a ``__main__`` (except ``agent``) is a service,
started as ``python -m vaultmesh.services.<name>``. An optional ``local.py`` in
the package defines ``MICRO_NAME`` (the ``nats.micro`` name to ping; None for
the gateway, which is checked on ``/readyz``) and ``local_env(data_dir)``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pkgutil
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.micro.service import ServiceVerb, control_subject

import vaultmesh
from vaultmesh.shared import bus, natsauth, provision, streams
from vaultmesh.shared.config import BusSettings, load_settings
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.files import create_private

SERVICES_PACKAGE = "vaultmesh.services"
GATEWAY = "gateway"
LOGGER = "logger"
EXCLUDED = frozenset({"agent"})
AGENT_ARGV = [sys.executable, "-m", "vaultmesh.services.agent"]
OS_PROFILES = ("ArchVault", "DebianVault")
_PING_TIMEOUT = 0.5
LocalEnv = Callable[[Path], dict[str, str]]


class StackError(Exception):
    """The local stack cannot be assembled; the message is for the operator."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service package ``up`` will run."""

    name: str
    micro_name: str | None = None
    local_env: LocalEnv | None = None
    package: str = SERVICES_PACKAGE

    @property
    def is_gateway(self) -> bool:
        """The gateway is checked over HTTP and gets the port and token files."""
        return self.name == GATEWAY

    @property
    def argv(self) -> list[str]:
        """The command that runs the service."""
        return [sys.executable, "-m", f"{self.package}.{self.name}"]


def discover(package: str = SERVICES_PACKAGE) -> list[ServiceSpec]:
    """Every runnable service package, sorted by name, with its ``local.py`` hook."""
    root = importlib.import_module(package)
    specs = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name in EXCLUDED or info.name.startswith("_"):
            continue
        if importlib.util.find_spec(f"{package}.{info.name}.__main__") is None:
            continue
        specs.append(_with_hook(package, info.name))
    return specs


def _with_hook(package: str, name: str) -> ServiceSpec:
    module_name = f"{package}.{name}.local"
    if importlib.util.find_spec(module_name) is None:
        return ServiceSpec(name, package=package)
    try:
        hook = importlib.import_module(module_name)
    except Exception as exc:
        raise StackError(f"cannot load {module_name}: {_describe(exc)}") from None
    micro_name = getattr(hook, "MICRO_NAME", None)
    local_env = getattr(hook, "local_env", None)
    return ServiceSpec(
        name,
        micro_name if isinstance(micro_name, str) else None,
        local_env if callable(local_env) else None,
        package,
    )


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Tokens:
    """Where the generated local tokens are (files of one token line, mode 0600)."""

    admin: Path
    agent: Path


def ensure_tokens(directory: Path) -> Tokens:
    """Generate the admin and agent tokens on first run; reuse them afterwards."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tokens = Tokens(directory / "admin.token", directory / "agent.token")
    for path in (tokens.admin, tokens.agent):
        _create_secret_file(path, secrets.token_urlsafe(32) + "\n")
    return tokens


def _create_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to a new 0600 file; keep an existing file untouched."""
    with contextlib.suppress(FileExistsError):
        create_private(path, text.encode("ascii"))


@dataclass(frozen=True)
class LocalAuth:
    """Static per-process NATS users (``natsauth``) for a local run."""

    identities: dict[str, natsauth.Identity]

    @classmethod
    def load(cls, directory: Path) -> LocalAuth:
        """The identities kept in ``directory`` (passwords generated on first run)."""
        try:
            return cls(natsauth.load_or_create(directory))
        except (ValueError, OSError) as exc:
            raise StackError(f"NATS identities: {exc}") from None

    @property
    def server_config(self) -> str:
        """The nats-server authorization block (holds passwords: keep the file private)."""
        return natsauth.server_config(self.identities, private_inboxes=True)

    def env(self, name: str) -> dict[str, str]:
        """The variables that make process ``name`` connect as its own identity."""
        identity = self.identities.get(name)
        if identity is None:
            raise StackError(
                f"no NATS identity for service {name!r}; add it to vaultmesh/shared/natsauth.py "
                "or run `vaultmesh up --no-nats-auth`"
            )
        # Private reply inboxes: no local process can read another's replies (vault answers).
        env = natsauth.identity_env(identity, private_inboxes=True)
        monitor = self.identities.get(natsauth.MONITOR)
        if name == LOGGER and monitor is not None:
            # The logger audits failed NATS logins, seen through the system account.
            env["VAULTMESH_LOGGER_MONITOR_USER"] = monitor.name
            env["VAULTMESH_LOGGER_MONITOR_PASSWORD"] = monitor.password
        return env

    def settings(self, nats_url: str, name: str = natsauth.ADMIN, **overrides: Any) -> BusSettings:
        """Bus settings for ``up`` itself: the operator identity (it only pings services),
        or the provisioner for the provisioning step."""
        env = self.env(name)
        return load_settings(
            BusSettings,
            nats_url=nats_url,
            nats_user=env["VAULTMESH_NATS_USER"],
            nats_password=env["VAULTMESH_NATS_PASSWORD"],
            nats_inbox_prefix=env["VAULTMESH_NATS_INBOX_PREFIX"],
            **overrides,
        )


@dataclass(frozen=True)
class Env:
    """Builds each child's environment."""

    data: Path
    nats_url: str
    log_level: str
    tokens: Tokens
    http_host: str
    auth: LocalAuth | None = None

    def _common(self, inherited: dict[str, str]) -> dict[str, str]:
        project = str(Path(vaultmesh.__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (project, inherited.get("PYTHONPATH")) if p)
        return {
            **inherited,
            "PYTHONPATH": path,
            "PYTHONUNBUFFERED": "1",
            "VAULTMESH_NATS_URL": self.nats_url,
            "LOG_LEVEL": self.log_level,
            "VAULTMESH_METRICS_PORT": "-1",
        }

    def for_service(self, spec: ServiceSpec, http_port: int) -> dict[str, str]:
        """Environment of a service: the contract variables, its data dir, its hook's extras."""
        own = self.data / spec.name
        own.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = self._common(dict(os.environ))
        if spec.local_env is not None:
            try:
                env.update(spec.local_env(own))
            except Exception as exc:
                raise StackError(
                    f"{spec.name} local_env failed: {type(exc).__name__}: {exc}"
                ) from None
        env["VAULTMESH_DATA_DIR"] = str(own)
        if self.auth is not None:
            env.update(self.auth.env(spec.name))
        if spec.is_gateway:
            env["VAULTMESH_HTTP_HOST"] = self.http_host
            env["VAULTMESH_HTTP_PORT"] = str(http_port)
            env["VAULTMESH_ADMIN_TOKENS_FILE"] = str(self.tokens.admin)
            env["VAULTMESH_AGENT_TOKENS_FILE"] = str(self.tokens.agent)
        return env

    def for_agent(self, number: int, interval: float) -> dict[str, str]:
        """Environment of demo agent ``number``: its own state dir, so its node id persists."""
        home = self.data / "agents" / str(number)
        (home / "root").mkdir(parents=True, exist_ok=True)
        # A VAULTMESH_NODE_ID (or other agent setting) from the operator's shell must not leak in.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VAULTMESH_")}
        env = self._common(clean)
        env.update(
            VAULTMESH_STATE_DIR=str(home / "state"),
            VAULTMESH_ROOT=str(home / "root"),
            VAULTMESH_HEARTBEAT_SECS=f"{interval:g}",
            VAULTMESH_HOSTNAME=f"local-agent-{number}",
            VAULTMESH_OS_PROFILE=OS_PROFILES[(number - 1) % len(OS_PROFILES)],
        )
        if self.auth is not None:
            env.update(self.auth.env("agent"))
        return env


async def provision_streams(nats_url: str, auth: LocalAuth | None) -> None:
    """The provisioning step, as the provisioner: every stream and bucket, single replica."""
    settings = (
        load_settings(BusSettings, nats_url=nats_url)
        if auth is None
        else auth.settings(nats_url, natsauth.PROVISIONER)
    )
    try:
        nc = await bus.connect(settings, "vaultmesh-provision")
    except Unavailable as exc:
        raise StackError(str(exc)) from None
    try:
        await provision.provision(nc, streams.StreamLimits())
    except (NatsError, TimeoutError) as exc:
        raise StackError(f"provisioning the streams failed: {type(exc).__name__}") from None
    finally:
        await bus.close(nc)


async def is_ready(nc: Client, spec: ServiceSpec, http_host: str, http_port: int) -> bool:
    """True once the service answers: $SRV.PING for micro services, /readyz for the gateway."""
    if spec.is_gateway:
        return await _http_ready(http_host, http_port)
    if spec.micro_name is None:
        return True  # nothing to ask: running is all we can tell
    with contextlib.suppress(NatsError, TimeoutError):
        await nc.request(control_subject(ServiceVerb.PING, spec.micro_name), b"", _PING_TIMEOUT)
        return True
    return False


async def _http_ready(host: str, port: int) -> bool:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    url = f"http://{host}:{port}/readyz"
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
