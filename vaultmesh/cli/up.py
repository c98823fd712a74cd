"""`vaultmesh up`: run the whole control plane locally, with optional demo agents.

Starts nats-server (JetStream) in the data directory, then every service
package under ``vaultmesh/services/`` that has a ``__main__`` (except the
agent), waits until each answers (micro ``$SRV.PING`` or the gateway's
``/readyz``), starts ``--agents`` local agents, prints one line saying where
the dashboard is, and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import uvloop
from nats.aio.client import Client

from vaultmesh.shared import bus
from vaultmesh.shared import localstack as local
from vaultmesh.shared.config import BusSettings, ConfigError, load_settings
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.logs import configure_logging
from vaultmesh.shared.natsserver import NatsServer, NatsServerError, free_port
from vaultmesh.shared.supervisor import Child, Supervisor

EPILOG = """\
files under the data directory:
  logs/<service>.log, logs/agent-<n>.log   output of every process
  nats/nats-server.log                     the NATS server's log
  secrets/admin.token                      admin token for the dashboard (log in with it)
  secrets/agent.token                      host token for agents that POST heartbeats
  <service>/                               each service's own data (VAULTMESH_DATA_DIR)
  agents/<n>/                              state (node id) and root of each demo agent
"""
READY_PREFIX = "VaultMesh is up"
_CHILD_GRACE = 3.0  # SIGTERM -> SIGKILL; plus the NATS stop, well inside 5 s.
_NATS_STOP = 1.5
_POLL = 0.25


class UpError(Exception):
    """Start-up failed; the message is for the operator."""


def register(sub: Any) -> None:
    """Add the `up` sub-command."""
    parser = sub.add_parser(
        "up",
        help="run NATS and every service locally",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".vaultmesh"), help="(./.vaultmesh)")
    parser.add_argument("--nats-port", type=int, default=4222, help="0 picks a free port (4222)")
    parser.add_argument("--http-port", type=int, default=8088, help="gateway port (8088)")
    parser.add_argument("--http-host", default="127.0.0.1", help="gateway address (127.0.0.1)")
    parser.add_argument("--agents", type=int, default=0, help="local demo agents to run (0)")
    parser.add_argument("--agent-interval", type=float, default=5.0, help="their heartbeat secs")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of every process")
    parser.add_argument("--start-timeout", type=float, default=90.0, help="seconds (90)")
    parser.add_argument(
        "--no-nats-auth",
        action="store_true",
        help="run NATS without per-service users (debugging only: any local process may publish)",
    )
    parser.set_defaults(func=up_command)


def up_command(args: argparse.Namespace) -> int:
    """Run until interrupted; 0 on a clean stop, 1 when something failed, 2 on bad options."""
    if args.agents < 0 or args.agent_interval <= 0 or args.start_timeout <= 0:
        print(
            "vaultmesh up: --agents, --agent-interval and --start-timeout must be positive",
            file=sys.stderr,
        )
        return 2
    for name, port in (("--nats-port", args.nats_port), ("--http-port", args.http_port)):
        if not 0 <= port <= 65535:
            print(f"vaultmesh up: {name} must be a port number", file=sys.stderr)
            return 2
    # Only problems reach the console; each child logs to its own file.
    configure_logging("up", "WARNING")
    logging.getLogger("vaultmesh.shared.bus").setLevel(logging.ERROR)
    return uvloop.run(Stack(args).run())


@dataclass
class Stack:
    """One local control plane: NATS, the services, the demo agents."""

    args: argparse.Namespace
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    supervisor: Supervisor = field(default_factory=Supervisor)
    nats: NatsServer | None = None
    _lock: IO[bytes] | None = None

    async def run(self) -> int:
        """Start, report, supervise, stop; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        try:
            return await self._run()
        except (UpError, local.StackError) as exc:
            print(f"vaultmesh up: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            self._shutdown()

    async def _run(self) -> int:
        data = self._prepare_data_dir()
        tokens = local.ensure_tokens(data / "secrets")
        auth = None if self.args.no_nats_auth else local.LocalAuth.load(data / "secrets")
        http_port = self.args.http_port or free_port(self.args.http_host)
        specs = local.discover()
        if any(spec.is_gateway for spec in specs):
            _check_port_free("--http-port", self.args.http_host, http_port)
        self._start_nats(data, auth)
        assert self.nats is not None
        env = local.Env(data, self.nats.url, self.args.log_level, tokens, self.args.http_host, auth)
        # The provisioning step: the only identity that may create streams and buckets.
        await local.provision_streams(self.nats.url, auth)
        nc = await self._connect(auth)
        try:
            for spec in specs:
                self._spawn(spec.name, spec.argv, env.for_service(spec, http_port), data)
            if not await self._wait_ready(nc, specs, http_port):
                return 130
        finally:
            await bus.close(nc)
        for n in range(1, self.args.agents + 1):
            agent_env = env.for_agent(n, self.args.agent_interval)
            self._spawn(f"agent-{n}", local.AGENT_ARGV, agent_env, data)
        print(self._ready_line(data, specs, http_port, tokens), flush=True)
        return await self._supervise()

    def _start_nats(self, data: Path, auth: local.LocalAuth | None) -> None:
        port = self.args.nats_port or free_port()
        _check_port_free("--nats-port", "127.0.0.1", port)
        extra = "" if auth is None else auth.server_config
        self.nats = NatsServer(data_dir=data / "nats", port=port, extra_config=extra)
        try:
            self.nats.start()
        except NatsServerError as exc:
            raise UpError(str(exc)) from None
        # The generated config holds the local NATS passwords.
        self.nats.config_path.chmod(0o600)

    def _prepare_data_dir(self) -> Path:
        data: Path = self.args.data_dir.resolve()
        try:
            data.mkdir(mode=0o700, parents=True, exist_ok=True)
            data.chmod(0o700)  # it holds tokens, passwords and every service's data
            self._lock = (data / "up.lock").open("wb")
        except OSError as exc:
            raise UpError(f"cannot use {data}: {exc.strerror}") from None
        # One `up` per data directory: two would fight over NATS and the service stores.
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UpError(f"another `vaultmesh up` is using {data}") from None
        return data

    async def _connect(self, auth: local.LocalAuth | None) -> Client:
        assert self.nats is not None
        url = self.nats.url
        try:
            settings = (
                load_settings(BusSettings, nats_url=url) if auth is None else auth.settings(url)
            )
            return await bus.connect(settings, "vaultmesh-up")
        except (Unavailable, ConfigError) as exc:
            raise UpError(str(exc)) from None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], data: Path) -> Child:
        return self.supervisor.spawn(name, argv, env, data / "logs" / f"{name}.log")

    async def _wait_ready(self, nc: Client, specs: list[local.ServiceSpec], port: int) -> bool:
        """Wait until every service answers; False if interrupted, UpError on failure."""
        pending = {spec.name: spec for spec in specs}
        deadline = asyncio.get_running_loop().time() + self.args.start_timeout
        while pending:
            self._raise_if_exited()
            if self.stop.is_set():
                return False
            for name, spec in list(pending.items()):
                if await local.is_ready(nc, spec, self.args.http_host, port):
                    del pending[name]
            if pending and asyncio.get_running_loop().time() > deadline:
                name = sorted(pending)[0]
                raise UpError(self._failure(name, f"not ready within {self.args.start_timeout:g}s"))
            if pending:
                await self._sleep(_POLL)
        return True

    async def _supervise(self) -> int:
        while not self.stop.is_set():
            try:
                self._raise_if_exited()
            except UpError as exc:
                print(f"vaultmesh up: {exc}", file=sys.stderr, flush=True)
                return 1
            await self._sleep(1.0)
        return 0

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def _raise_if_exited(self) -> None:
        for child in self.supervisor.exited():
            raise UpError(self._failure(child.name, f"exited with code {child.returncode}"))

    def _failure(self, name: str, what: str) -> str:
        child = next(c for c in self.supervisor.children if c.name == name)
        lines = "\n".join(f"  | {line}" for line in child.tail())
        return f"{name} {what}; last lines of {child.log_path}:\n{lines}"

    def _ready_line(
        self, data: Path, specs: list[local.ServiceSpec], port: int, tokens: local.Tokens
    ) -> str:
        assert self.nats is not None
        names = ", ".join(spec.name for spec in specs) or "none yet"
        where = f"NATS {self.nats.url}; services: {names}; logs in {data / 'logs'}/"
        if any(spec.is_gateway for spec in specs):
            host = "127.0.0.1" if self.args.http_host in ("0.0.0.0", "::") else self.args.http_host
            url = f"http://{host}:{port}/"
            return (
                f"{READY_PREFIX}: dashboard {url} (log in with the admin token in {tokens.admin}); "
                f"{where}; Ctrl-C stops"
            )
        return f"{READY_PREFIX} (no gateway installed): {where}; Ctrl-C stops"

    def _shutdown(self) -> None:
        self.supervisor.stop(_CHILD_GRACE)
        if self.nats is not None:
            self.nats.stop(timeout=_NATS_STOP)
        if self._lock is not None:
            self._lock.close()


def _check_port_free(option: str, host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise UpError(f"{host}:{port} is in use; pick another with {option}") from None
