"""Container healthcheck: ``python -m vaultmesh.shared.healthcheck URL [--expect REGEX]``.

Exit 0 when ``URL`` answers 200 within the timeout (and, with ``--expect``, its
body matches the regular expression), else 1. Standard library only, so a
check every few seconds stays cheap. Used by ``stack.yml``: services are
checked on their metrics endpoint (``vaultmesh_up ... 1.0`` is set once the
service is started and cleared when it stops), the gateway on ``/readyz``,
nats-server on its monitoring ``/healthz``.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.error
import urllib.request

MAX_BODY = 1024 * 1024
UP_METRIC = r"(?m)^vaultmesh_up\{[^}]*\} 1\.0$"


def check(url: str, expect: str | None, timeout: float) -> bool:
    """True when ``url`` answers 200 and its body matches ``expect`` (if given)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (local URL)
            if response.status != 200:
                return False
            body = response.read(MAX_BODY).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return expect is None or re.search(expect, body) is not None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m vaultmesh.shared.healthcheck")
    parser.add_argument("url")
    parser.add_argument("--expect", help="regex the body must match ('up': a ready service)")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    expect = UP_METRIC if args.expect == "up" else args.expect
    return 0 if check(args.url, expect, args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
