"""`vaultmesh up`: run the whole control plane locally, with optional demo agents.

Starts nats-server (JetStream) in the data directory, then every service
package under ``vaultmesh/services/`` that has a ``__main__`` (except the
agent), waits until each answers (micro ``$SRV.PING`` or the gateway's
``/readyz``), starts ``--agents`` local agents, prints one line saying where
the dashboard is, and supervises: a process that crashes (nats-server
included) is reported and started again after a backoff, and once everything
answers again the line is printed again; a process that keeps crashing stops
everything. Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import uvloop
from nats.aio.client import Client

from vaultmesh.shared import bus
from vaultmesh.shared import localstack as local
from vaultmesh.shared.config import BusSettings, ConfigError, load_settings
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.logs import configure_logging
from vaultmesh.shared.natsserver import NatsServer, NatsServerError, free_port
from vaultmesh.shared.supervisor import Child, Crash, RestartPolicy, Supervisor

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
NATS = "nats-server"
_CHILD_GRACE = 3.0  # SIGTERM -> SIGKILL; plus the NATS stop, well inside 5 s.
_NATS_STOP = 1.5
_NATS_START = 10.0
_POLL = 0.25
_RECHECK = 1.0  # how often a recovering stack is asked whether everything answers again
_CRASH_LINES = 5
T = TypeVar("T")


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
        "--restart-backoff",
        type=float,
        default=1.0,
        help="seconds before restarting a crashed process; doubles per crash in the window (1)",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=5,
        help="restarts of one process within --restart-window before up gives up (5)",
    )
    parser.add_argument("--restart-window", type=float, default=60.0, help="seconds (60)")
    parser.add_argument(
        "--no-nats-auth",
        action="store_true",
        help="run NATS without per-service users (debugging only: any local process may publish)",
    )
    parser.set_defaults(func=up_command)


def up_command(args: argparse.Namespace) -> int:
    """Run until interrupted; 0 on a clean stop, 1 when something failed, 2 on bad options."""
    if (
        args.agents < 0
        or args.max_restarts < 0
        or min(args.agent_interval, args.start_timeout, args.restart_backoff, args.restart_window)
        <= 0
    ):
        print(
            "vaultmesh up: --agents, --agent-interval, --start-timeout and the --restart "
            "options must be positive",
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


@dataclass(frozen=True)
class Layout:
    """What was started, for the ready line and for asking whether it all answers."""

    data: Path
    specs: list[local.ServiceSpec]
    http_port: int
    tokens: local.Tokens
    auth: local.LocalAuth | None


@dataclass
class Stack:
    """One local control plane: NATS, the services, the demo agents."""

    args: argparse.Namespace
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    supervisor: Supervisor = field(default_factory=Supervisor)
    nats: NatsServer | None = None
    _lock: IO[bytes] | None = None

    def __post_init__(self) -> None:
        self.supervisor.policy = RestartPolicy(
            backoff_s=self.args.restart_backoff,
            max_restarts=self.args.max_restarts,
            window_s=self.args.restart_window,
        )

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
        if not await self._start_nats(data, auth):
            return 130
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
        layout = Layout(data, specs, http_port, tokens, auth)
        print(self._ready_line(layout), flush=True)
        return await self._supervise(layout)

    async def _start_nats(self, data: Path, auth: local.LocalAuth | None) -> bool:
        """Start nats-server as a supervised child; False if interrupted, UpError on failure."""
        port = self.args.nats_port or free_port()
        _check_port_free("--nats-port", "127.0.0.1", port)
        extra = "" if auth is None else auth.server_config
        self.nats = NatsServer(data_dir=data / "nats", port=port, extra_config=extra)
        try:
            # The same command restarts it on the same port with the same JetStream store.
            argv = self.nats.prepare()  # the config (0600) holds the local NATS passwords
        except (NatsServerError, OSError) as exc:
            raise UpError(str(exc)) from None
        self.supervisor.spawn(NATS, argv, dict(os.environ), self.nats.log_path)
        deadline = asyncio.get_running_loop().time() + _NATS_START
        while not self.nats.accepting():
            self._raise_if_exited()
            if self.stop.is_set():
                return False
            if asyncio.get_running_loop().time() > deadline:
                raise UpError(self._failure(NATS, f"not ready within {_NATS_START:g}s"))
            await self._sleep(0.05)
        self.nats.write_url_file()
        return True

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

    async def _connect(self, auth: local.LocalAuth | None, **overrides: Any) -> Client:
        assert self.nats is not None
        url = self.nats.url
        try:
            settings = (
                load_settings(BusSettings, nats_url=url, **overrides)
                if auth is None
                else auth.settings(url, **overrides)
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

    async def _supervise(self, layout: Layout) -> int:
        """Restart what crashes until stopped (0) or something crashes too often (1)."""
        loop = asyncio.get_running_loop()
        recovering, next_check = False, 0.0
        while not self.stop.is_set():
            for crash in self.supervisor.crashed():
                _say(self._crash_report(crash))
                if crash.restart_in is None:
                    return 1
                recovering = True
            for child in self.supervisor.restart_due():
                _say(f"{child.name} started again (pid {child.pid})")
            if recovering and not self.supervisor.pending() and loop.time() >= next_check:
                next_check = loop.time() + _RECHECK
                if await self._unless_stopped(self._answering(layout)):
                    recovering = False
                    print(self._ready_line(layout, again=True), flush=True)
            await self._sleep(_POLL)
        return 0

    def _crash_report(self, crash: Crash) -> str:
        child, what = crash.child, crash.describe()
        policy = self.supervisor.policy
        if crash.restart_in is None:
            lines = "\n".join(f"  | {line}" for line in child.tail())
            return (
                f"{child.name} {what}: {crash.crashes} crashes within {policy.window_s:g}s "
                f"(--max-restarts {policy.max_restarts}); giving up and stopping everything; "
                f"last lines of {child.log_path}:\n{lines}"
            )
        lines = "\n".join(f"  | {line}" for line in child.tail(_CRASH_LINES))
        tail = f"; last lines of {child.log_path}:\n{lines}" if lines else ""
        return (
            f"{child.name} {what}; restarting it in {crash.restart_in:g}s "
            f"(restart {crash.crashes} of {policy.max_restarts} allowed within "
            f"{policy.window_s:g}s){tail}"
        )

    async def _answering(self, layout: Layout) -> bool:
        """Whether NATS and every service answer, as at start-up."""
        try:
            nc = await self._connect(layout.auth, nats_connect_attempts=1)
        except UpError:
            return False
        try:
            for spec in layout.specs:
                if not await local.is_ready(nc, spec, self.args.http_host, layout.http_port):
                    return False
            return True
        finally:
            await bus.close(nc)

    async def _unless_stopped(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or None (and ``work`` cancelled) once a stop is asked for."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

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

    def _ready_line(self, layout: Layout, again: bool = False) -> str:
        assert self.nats is not None
        prefix = READY_PREFIX + (" again" if again else "")
        names = ", ".join(spec.name for spec in layout.specs) or "none yet"
        agents = f"; agents: {self.args.agents}" if self.args.agents else ""
        logs = layout.data / "logs"
        where = f"NATS {self.nats.url}; services: {names}{agents}; logs in {logs}/"
        if any(spec.is_gateway for spec in layout.specs):
            host = "127.0.0.1" if self.args.http_host in ("0.0.0.0", "::") else self.args.http_host
            url = f"http://{host}:{layout.http_port}/"
            return (
                f"{prefix}: dashboard {url} (log in with the admin token in "
                f"{layout.tokens.admin}); {where}; Ctrl-C stops"
            )
        return f"{prefix} (no gateway installed): {where}; Ctrl-C stops"

    def _shutdown(self) -> None:
        # The services first, so they can finish their work with the bus still there.
        children = self.supervisor.children
        self.supervisor.stop(_CHILD_GRACE, [child for child in children if child.name != NATS])
        self.supervisor.stop(_NATS_STOP, [child for child in children if child.name == NATS])
        if self._lock is not None:
            self._lock.close()


def _say(message: str) -> None:
    print(f"vaultmesh up: {message}", file=sys.stderr, flush=True)


def _check_port_free(option: str, host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise UpError(f"{host}:{port} is in use; pick another with {option}") from None
