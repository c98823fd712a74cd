"""The real machine behind ``health.Probes``: subprocesses, /proc, the filesystem."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

from vaultmesh.services.agent.health import Probes

MEMINFO = Path("/proc/meminfo")


async def run_command(argv: Sequence[str], timeout: float) -> int | None:
    """Run ``argv`` silently; its exit code, or None when it is missing or exceeds ``timeout``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        await _kill(proc)
        return None
    except asyncio.CancelledError:
        # Shutdown must not leave a child behind (or wait on a hung one for long).
        await _kill(proc)
        raise


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await asyncio.shield(proc.wait())


def _disk_usage(path: Path) -> tuple[int, int]:
    usage = shutil.disk_usage(path)
    return usage.total, usage.free


def _meminfo() -> str:
    return MEMINFO.read_text(encoding="ascii", errors="replace")


def probes() -> Probes:
    """Probes that look at this machine."""
    return Probes(
        run=run_command,
        is_dir=Path.is_dir,
        loadavg=os.getloadavg,
        meminfo=_meminfo,
        disk_usage=_disk_usage,
    )


def hostname() -> str:
    """The system hostname (seed 000: hostname::get())."""
    return socket.gethostname() or "localhost"
