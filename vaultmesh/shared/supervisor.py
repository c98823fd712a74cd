"""A small process supervisor for local runs: start children, watch them, stop them all.

Used by ``vaultmesh up`` (and usable by end-to-end tests). Each child gets its
own session (so a terminal Ctrl-C reaches only the supervisor, which then stops
children in order), writes stdout and stderr to its own log file, and on Linux
is asked to receive SIGTERM if the supervisor dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_TAIL_BYTES = 64 * 1024


def _death_signal() -> Callable[[], None] | None:
    """A pre-exec hook making the child get SIGTERM when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Resolved here, in the parent: the child must not import or allocate before exec.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return hook


_PREEXEC = _death_signal()


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a text file (empty when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


@dataclass
class Child:
    """One supervised process and its log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Child:
        """Start the process, appending its output to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                list(self.argv),
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_PREEXEC,  # only calls prctl, resolved before the fork
            )
        return self

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return None if self.proc is None else self.proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited, else None."""
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (it leads one) while it runs."""
        if self.alive():
            assert self.proc is not None
            # The group also holds anything the child started (a health-check command ...).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def tail(self, lines: int = 20) -> list[str]:
        """The last lines of the child's log."""
        return tail(self.log_path, lines)


@dataclass
class Supervisor:
    """A set of children stopped together: SIGTERM, a grace period, then SIGKILL."""

    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Child:
        """Start and track a child."""
        child = Child(name, argv, env, log).start()
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        """Children that have stopped running."""
        return [child for child in self.children if child.proc is not None and not child.alive()]

    def stop(self, grace: float = 3.0) -> list[Child]:
        """Stop every child within about ``grace`` seconds; return those that had to be killed."""
        for child in self.children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(child.alive() for child in self.children) and time.monotonic() < deadline:
            time.sleep(0.05)
        killed = [child for child in self.children if child.alive()]
        for child in killed:
            child.signal(signal.SIGKILL)
        for child in self.children:
            if child.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(timeout=1.0)
        return killed
