#!/usr/bin/env python3
"""One entry point for a fresh machine: set up the environment, then run the swarm or the tests.

    python3 scripts/dev.py up [vaultmesh up options]   # the whole swarm, locally
    python3 scripts/dev.py test [pytest options]       # the full test suite
    python3 scripts/dev.py lint                        # ruff + mypy strict

It needs only Python 3.11+. It creates ``.venv`` and installs the project with
the pinned ``constraints.txt`` (again whenever that file changes). ``test`` also
installs Debian's Chromium for the browser tests when it is missing and it can
(root with apt-get); without it those tests are skipped, and say why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".vaultmesh-installed"
CHROMIUM = Path("/usr/bin/chromium")


def _say(text: str) -> None:
    print(f"[dev] {text}", file=sys.stderr, flush=True)


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("constraints.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    """Create .venv and install the pinned project into it, unless already current."""
    if sys.version_info < (3, 11):  # noqa: UP036 - a clear message on an old Python
        sys.exit("VaultMesh needs Python 3.11 or newer")
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        return
    if not (BIN / "python").exists():
        _say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    _say("installing pinned dependencies (constraints.txt)")
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-c", "constraints.txt", "-e", ".[dev]"], cwd=ROOT, check=True)
    STAMP.write_text(fingerprint)


def ensure_chromium() -> None:
    """Install Debian's chromium for the browser tests when missing and possible."""
    if CHROMIUM.exists() or os.environ.get("VAULTMESH_SKIP_BROWSER_INSTALL"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _say("chromium missing and cannot be installed here: browser tests will be skipped")
        return
    _say("installing Debian chromium for the browser tests")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    subprocess.run(["apt-get", "update", "-q"], check=False, **quiet)  # type: ignore[call-overload]
    subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, **quiet)  # type: ignore[call-overload]


def run(argv: list[str]) -> int:
    """Dispatch ``up``, ``test`` or ``lint``."""
    if not argv or argv[0] not in ("up", "test", "lint"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv()
    os.chdir(ROOT)
    if command == "up":
        os.execv(BIN / "vaultmesh", [str(BIN / "vaultmesh"), "up", *rest])  # noqa: S606
    if command == "test":
        ensure_chromium()
        os.execv(BIN / "python", [str(BIN / "python"), "-m", "pytest", *rest])  # noqa: S606
    steps = [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
    ]
    for step in steps:
        _say(" ".join(Path(step[0]).name if i == 0 else part for i, part in enumerate(step)))
        if subprocess.run(step, check=False).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
