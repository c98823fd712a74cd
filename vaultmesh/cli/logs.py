"""`vaultmesh logs`: view, tail, stats, verify and proof for the audit log (seed 001 V0.6.1).

``view``/``tail``/``stats``/``proof`` ask the ``logs`` service over the bus
(``VAULTMESH_NATS_URL`` and the usual credential variables, or ``--nats-url``);
``verify`` works offline on a log directory or a copy of it, with only the
public key.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import orjson
from nats.aio.client import Client

from vaultmesh.cli.connection import operator_settings
from vaultmesh.services.logger.errors import CheckpointError, LoggerError
from vaultmesh.services.logger.proofcheck import check_consistency, check_inclusion
from vaultmesh.services.logger.signing import load_public_keys
from vaultmesh.services.logger.trusted import load_trusted
from vaultmesh.services.logger.verify import verify_dir
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import Unavailable, VaultMeshError

_SEVERITIES = ["debug", "info", "notice", "warning", "error", "critical"]
_TAIL_PAGE = 1000
_FOLLOW_WAIT_S = 20.0  # the longest the logger holds one follow request
_RELATIVE_ARG = re.compile(r"^-\d+[smhdw]?$|^-\d*\.\d+$")


def register(sub: Any) -> None:
    """Add the `logs` sub-commands."""
    parser = sub.add_parser("logs", help="query, follow and verify the audit log")
    commands = parser.add_subparsers(dest="logs_command", metavar="SUBCOMMAND", required=True)

    view = commands.add_parser("view", help="list entries (newest first)")
    _filters(view)
    view.add_argument("--limit", type=int, default=50, help="most entries to show (default 50)")
    view.add_argument("--oldest-first", action="store_true", help="oldest entries first")
    view.set_defaults(func=_run(_view))

    tail = commands.add_parser("tail", help="show the latest entries; -f to follow")
    _filters(tail)
    tail.add_argument("-n", "--limit", type=int, default=10, help="entries to show first")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    tail.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="-f: pause before retrying an unavailable logger (s)",
    )
    tail.set_defaults(func=_run(_tail))

    stats = commands.add_parser("stats", help="counts per node, kind and severity")
    _filters(stats, default_since="-24h")
    stats.set_defaults(func=_run(_stats))

    proof = commands.add_parser("proof", help="fetch a proof and verify it locally")
    what = proof.add_mutually_exclusive_group(required=True)
    what.add_argument("--seq", type=int, help="inclusion proof of entry SEQ")
    what.add_argument("--first", type=int, help="consistency proof from tree size FIRST")
    proof.add_argument("--size", type=int, help="tree size to prove against (default: signed)")
    proof.add_argument("--pub", type=Path, help="public key file to check the checkpoint with")
    _common(proof)
    proof.set_defaults(func=_run(_proof))

    verify = commands.add_parser("verify", help="verify a log directory offline")
    verify.add_argument("--dir", type=Path, help="log directory (default: VAULTMESH_DATA_DIR)")
    verify.add_argument("--pub", type=Path, help="public key file (default: DIR/checkpoint.pub)")
    verify.add_argument(
        "--trusted",
        metavar="CHECKPOINT",
        help="a checkpoint seen before (SIZE:ROOT_HASH, or a copy of ROOT.txt or of a "
        "checkpoint's JSON) that the log must extend: catches a rollback",
    )
    verify.add_argument(
        "--accept-gaps",
        action="store_true",
        help="accept stream gaps recorded by signed gap entries (still reported)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=_verify)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--nats-url", help="NATS URL (default: VAULTMESH_NATS_URL)")
    parser.add_argument("--timeout", type=float, default=10.0, help="request timeout (s)")


def _filters(parser: argparse.ArgumentParser, default_since: str | None = None) -> None:
    # Let `--since -1h` work: argparse would otherwise take "-1h" for an option.
    parser._negative_number_matcher = _RELATIVE_ARG
    parser.add_argument("--kind", help="entry kind (audit, command, receipt, note, ...)")
    parser.add_argument("--node", help="node id")
    parser.add_argument("--subject", help="subject or wildcard pattern, e.g. 'audit.vault.>'")
    parser.add_argument("--since", default=default_since, help="RFC 3339 time or e.g. -1h")
    parser.add_argument("--until", help="RFC 3339 time or e.g. -10m")
    parser.add_argument("--min-severity", choices=_SEVERITIES, help="lowest severity to show")
    _common(parser)


def _filter_body(args: argparse.Namespace) -> dict[str, Any]:
    fields = ("kind", "node", "subject", "since", "until", "min_severity")
    return {name: getattr(args, name) for name in fields if getattr(args, name) is not None}


def _run(command: Any) -> Any:
    """Wrap an async bus command: connect, run, turn errors into exit codes."""

    def run(args: argparse.Namespace) -> int:
        """Run the command; the exit code."""
        try:
            return int(asyncio.run(_with_bus(command, args)))
        except (ConfigError, LoggerError) as exc:
            print(f"vaultmesh logs: {exc}", file=sys.stderr)
            return 2
        except VaultMeshError as exc:
            print(f"vaultmesh logs: {exc.message}", file=sys.stderr)
            return 1

    return run


async def _with_bus(command: Any, args: argparse.Namespace) -> int:
    overrides = {"nats_url": args.nats_url} if args.nats_url else {}
    settings = operator_settings(**overrides)
    nc = await bus.connect(settings, "vaultmesh-cli-logs")
    try:
        return int(await command(nc, args))
    finally:
        await bus.close(nc)


async def _ask(
    nc: Client, args: argparse.Namespace, op: str, body: dict[str, Any], wait_s: float = 0.0
) -> Any:
    """One ``logs.<op>`` request; ``wait_s`` makes a ``view`` a long poll of that length."""
    if wait_s:
        body = {**body, "wait_s": wait_s}
    return await bus.request(nc, subjects.logs_api(op), body, timeout=args.timeout + wait_s)


def _summary(entry: dict[str, Any]) -> str:
    payload = entry.get("payload")
    if isinstance(payload, dict):
        text = payload.get("body") or " ".join(
            f"{key}={payload[key]}" for key in ("action", "outcome", "principal") if key in payload
        )
        if not text:
            text = orjson.dumps(payload).decode()
    elif payload is None and "payload_b64" in entry:
        text = "<binary payload>"
    else:
        text = orjson.dumps(payload).decode()
    return str(text).replace("\n", " ")[:120]


def _print(entries: list[dict[str, Any]], as_json: bool) -> None:
    for entry in entries:
        if as_json:
            print(orjson.dumps(entry).decode())
        else:
            print(
                f"{entry.get('seq', '?'):>8} {entry.get('received', '')} "
                f"{entry.get('severity', ''):<8} {entry.get('kind', ''):<9} "
                f"{entry.get('node') or '-'} {entry.get('subject', '')} {_summary(entry)}"
            )
    sys.stdout.flush()


async def _view(nc: Client, args: argparse.Namespace) -> int:
    order = "oldest" if args.oldest_first else "newest"
    body = {**_filter_body(args), "limit": args.limit, "order": order}
    reply = await _ask(nc, args, "view", body)
    _print(reply["entries"], args.json)
    return 0


async def _tail(nc: Client, args: argparse.Namespace) -> int:
    reply = await _ask(nc, args, "view", {**_filter_body(args), "limit": args.limit})
    _print(list(reversed(reply["entries"])), args.json)
    cursor = int(reply["size"]) - 1
    while args.follow:
        body = {**_filter_body(args), "order": "oldest", "after_seq": cursor, "limit": _TAIL_PAGE}
        try:
            # A long poll: the logger answers as soon as a matching entry is written.
            reply = await _ask(nc, args, "view", body, wait_s=_FOLLOW_WAIT_S)
        except Unavailable as exc:  # the logger restarting: keep following
            print(f"vaultmesh logs: {exc.message}; retrying", file=sys.stderr)
            await asyncio.sleep(args.interval)
            continue
        entries = reply["entries"]
        _print(entries, args.json)
        # A full page may not reach the end yet; otherwise the scan covered the whole log.
        cursor = entries[-1]["seq"] if len(entries) == _TAIL_PAGE else int(reply["size"]) - 1
    return 0


async def _stats(nc: Client, args: argparse.Namespace) -> int:
    reply = await _ask(nc, args, "stats", _filter_body(args))
    if args.json:
        print(orjson.dumps(reply).decode())
        return 0
    window = f"{reply.get('since') or 'start'} .. {reply.get('until') or 'now'}"
    print(f"{reply['total']} entries ({window}); log size {reply['size']}")
    for title, key in (("node", "by_node"), ("kind", "by_kind"), ("severity", "by_severity")):
        print(f"by {title}:")
        for name, count in reply[key].items():
            print(f"  {count:>8}  {name}")
    return 0


async def _proof(nc: Client, args: argparse.Namespace) -> int:
    keys = load_public_keys(args.pub) if args.pub else None
    if args.seq is not None:
        body: dict[str, Any] = {"type": "inclusion", "seq": args.seq}
        if args.size:
            body["tree_size"] = args.size
    else:
        body = {"type": "consistency", "first": args.first}
        if args.size:
            body["second"] = args.size
    reply = await _ask(nc, args, "proof", body)
    check = check_inclusion if args.seq is not None else check_consistency
    problems = check(reply, keys)
    if args.json:
        print(orjson.dumps({"ok": not problems, "problems": problems, "proof": reply}).decode())
    else:
        print(orjson.dumps(reply, option=orjson.OPT_INDENT_2).decode())
        print("proof verified" if not problems else "PROOF FAILED: " + "; ".join(problems))
    return 0 if not problems else 1


def _verify(args: argparse.Namespace) -> int:
    env_dir = os.environ.get("VAULTMESH_DATA_DIR")
    directory = args.dir or (Path(env_dir) if env_dir else None)
    if directory is None or not directory.is_dir():
        print("vaultmesh logs verify: give --dir (a log directory)", file=sys.stderr)
        return 2
    try:
        trusted = load_trusted(args.trusted) if args.trusted is not None else None
    except CheckpointError as exc:
        print(f"vaultmesh logs verify: --trusted: {exc}", file=sys.stderr)
        return 2
    report = verify_dir(directory, args.pub, accept_gaps=args.accept_gaps, trusted=trusted)
    if args.json:
        print(orjson.dumps(report.to_json()).decode())
    else:
        verdict = "OK" if report.ok else "FAILED"
        print(
            f"{verdict}: {report.entries} entries, {report.checkpoints} checkpoints, "
            f"signed up to {report.signed_size}, root {report.root_hash}"
        )
        for problem in report.problems:
            print(f"  problem: {problem}")
        for warning in report.warnings:
            print(f"  warning: {warning}")
        if report.first_bad_seq is not None:
            print(f"first bad entry: {report.first_bad_seq}")
        if report.ok and report.trusted is not None:
            print(f"extends the trusted checkpoint {report.trusted}")
        if report.signed_size:
            label = f"{report.signed_size}:{report.signed_root}"
            print(f"latest checkpoint (keep it for --trusted): {label}")
    return 0 if report.ok else 1
