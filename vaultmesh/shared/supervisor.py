"""A small process supervisor for local runs: start children, restart crashed ones, stop all.

Used by ``vaultmesh up`` (and usable by end-to-end tests). Each child gets its
own session (so a terminal Ctrl-C reaches only the supervisor, which then stops
children in order), writes stdout and stderr to its own log file, and on Linux
is asked to receive SIGTERM if the supervisor dies without cleaning up.

A child that exits on its own is a crash: ``crashed()`` reports it once and
schedules its restart after a backoff that doubles with each crash inside the
policy's window; ``restart_due()`` starts it again with the same command,
environment and log. A child that crashes more often than the policy allows is
reported with no restart: the caller gives up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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


@dataclass(frozen=True)
class RestartPolicy:
    """When a crashed child comes back, and when to stop trying.

    The n-th crash within ``window_s`` waits ``backoff_s * 2**(n-1)`` (at most
    ``max_backoff_s``, or ``backoff_s`` if larger); a crash beyond ``max_restarts``
    within the window gives up.
    """

    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_restarts: int = 5
    window_s: float = 60.0

    def delay(self, crashes: int) -> float:
        """The wait before restarting after the ``crashes``-th crash in the window."""
        cap = max(self.max_backoff_s, self.backoff_s)
        return float(min(cap, self.backoff_s * 2 ** max(0, crashes - 1)))


@dataclass(frozen=True)
class Crash:
    """A child that exited on its own, reported once."""

    child: Child
    returncode: int
    crashes: int  # within the policy's window, this one included
    restart_in: float | None  # None: too many crashes, no restart

    def describe(self) -> str:
        """How it ended: an exit code or the signal that killed it."""
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"was killed by {name}"
        return f"exited with code {self.returncode}"


@dataclass
class Child:
    """One supervised process and its log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0
    # Monotonic times of the crashes inside the restart window.
    crash_times: list[float] = field(default_factory=list, repr=False)
    # When a scheduled restart is due (monotonic); None when none is scheduled.
    restart_at: float | None = field(default=None, repr=False)
    given_up: bool = False  # crashed too often: not restarted again

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
    policy: RestartPolicy = field(default_factory=RestartPolicy)

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Child:
        """Start and track a child."""
        child = Child(name, argv, env, log).start()
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        """Children that have stopped running."""
        return [child for child in self.children if child.proc is not None and not child.alive()]

    def crashed(self, now: float | None = None) -> list[Crash]:
        """Children that exited since the last call, each with its restart scheduled (or not)."""
        now = time.monotonic() if now is None else now
        found = []
        for child in self.children:
            code = child.returncode
            if code is None or child.restart_at is not None or child.given_up:
                continue
            window = self.policy.window_s
            child.crash_times = [t for t in child.crash_times if now - t < window] + [now]
            crashes = len(child.crash_times)
            restart_in = None
            if crashes <= self.policy.max_restarts:
                restart_in = self.policy.delay(crashes)
                child.restart_at = now + restart_in
            else:
                child.given_up = True
            found.append(Crash(child, code, crashes, restart_in))
        return found

    def restart_due(self, now: float | None = None) -> list[Child]:
        """Start again the crashed children whose backoff is over; return them."""
        now = time.monotonic() if now is None else now
        due = [c for c in self.children if c.restart_at is not None and c.restart_at <= now]
        for child in due:
            child.restart_at = None
            child.restarts += 1
            child.start()
        return due

    def pending(self) -> list[Child]:
        """Children waiting for their restart."""
        return [child for child in self.children if child.restart_at is not None]

    def stop(self, grace: float = 3.0, children: Iterable[Child] | None = None) -> list[Child]:
        """Stop ``children`` (default: all) within about ``grace`` seconds, restarting none;
        return those that had to be killed."""
        chosen = list(self.children if children is None else children)
        for child in chosen:
            child.restart_at = None
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(child.alive() for child in chosen) and time.monotonic() < deadline:
            time.sleep(0.05)
        killed = [child for child in chosen if child.alive()]
        for child in killed:
            child.signal(signal.SIGKILL)
        for child in chosen:
            if child.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(timeout=1.0)
        return killed
