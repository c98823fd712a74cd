"""`vaultmesh vault`: the vault's operations over NATS, and master key generation.

    vaultmesh vault get KEY [--version N]
    vaultmesh vault set KEY VALUE|- [--cas N]     (``-``: read the value from stdin)
    vaultmesh vault delete KEY [--cas N]
    vaultmesh vault list [PREFIX]
    vaultmesh vault rotate | status
    vaultmesh vault keygen [--out FILE]

Common options: ``--principal`` (default ``$VAULTMESH_VAULT_PRINCIPAL`` or ``admin``),
``--json`` (print the reply's data as JSON), ``--timeout``. The NATS connection
comes from the usual ``VAULTMESH_NATS_*`` variables. Exit codes: 0 ok, 1 error,
2 usage, 3 access denied, 4 not found, 5 conflict, 69 vault or NATS unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from vaultmesh.cli.connection import operator_settings
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import VaultMeshError

PRINCIPAL_VAR = "VAULTMESH_VAULT_PRINCIPAL"
EXIT_CODES = {"forbidden": 3, "not_found": 4, "conflict": 5, "unavailable": 69}


def register(sub: Any) -> None:
    """Add the `vault` command group."""
    # SUPPRESS: options may come before or after the operation without one resetting the other.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--principal", help=f"vault principal to act as (default ${PRINCIPAL_VAR} or admin)"
    )
    common.add_argument("--json", action="store_true", help="print the reply data as JSON")
    common.add_argument("--timeout", type=float, help="seconds to wait for a reply (default 5)")
    parser = sub.add_parser("vault", help="encrypted secrets over NATS", parents=[common])
    ops = parser.add_subparsers(dest="vault_command", metavar="OPERATION", required=True)
    _add(ops, common, "get", "print a secret's value").add_argument("--version", type=int)
    set_op = _add(ops, common, "set", "store a new version of a secret")
    set_op.add_argument("value", help="the value, or - to read it from stdin (never echoed)")
    set_op.add_argument("--cas", type=int, help="only if the current version is N (0: absent)")
    _add(ops, common, "delete", "delete a secret").add_argument("--cas", type=int)
    list_op = ops.add_parser("list", help="list key paths", parents=[common])
    list_op.add_argument("prefix", nargs="?", default="")
    list_op.set_defaults(func=_run)
    for name, text in (("rotate", "start a new key term"), ("status", "show vault status")):
        ops.add_parser(name, help=text, parents=[common]).set_defaults(func=_run)
    keygen = ops.add_parser("keygen", help="print (or --out FILE) a new master key")
    keygen.add_argument("--out", type=Path, help="write to FILE (mode 0600, never overwritten)")
    keygen.set_defaults(func=_keygen)


def _add(ops: Any, common: argparse.ArgumentParser, name: str, text: str) -> Any:
    parser = ops.add_parser(name, help=text, parents=[common])
    parser.add_argument("key")
    parser.set_defaults(func=_run)
    return parser


def _principal(args: argparse.Namespace) -> str:
    return str(getattr(args, "principal", os.environ.get(PRINCIPAL_VAR, "admin")))


def _keygen(args: argparse.Namespace) -> int:
    from vaultmesh.services.vault import masterkey

    if args.out is None:
        print(masterkey.encode(masterkey.generate()))
        return 0
    try:
        masterkey.write_new(args.out)
    except FileExistsError:
        print(f"error: {args.out} exists; not overwritten", file=sys.stderr)
        return 1
    print(f"wrote a new master key to {args.out} (mode 0600)", file=sys.stderr)
    return 0


def _read_value(arg: str) -> str:
    if arg != "-":
        return arg
    if sys.stdin.isatty():
        return getpass.getpass("value: ")
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    op = args.vault_command
    if op == "list":
        return {"prefix": args.prefix}
    if op in ("rotate", "status"):
        return {}
    payload: dict[str, Any] = {"key": args.key}
    if op == "get" and args.version is not None:
        payload["version"] = args.version
    if op == "set":
        payload["value"] = _read_value(args.value)
    if op in ("set", "delete") and args.cas is not None:
        payload["cas"] = args.cas
    return payload


async def _call(args: argparse.Namespace, payload: dict[str, Any]) -> Any:
    settings = operator_settings()
    subject = subjects.vault(_principal(args), args.vault_command)
    nc = await bus.connect(settings, "vaultmesh-cli")
    try:
        return await bus.request(nc, subject, payload, timeout=getattr(args, "timeout", 5.0))
    finally:
        await bus.close(nc)


def _run(args: argparse.Namespace) -> int:
    try:
        subjects.token(_principal(args))
        data = asyncio.run(_call(args, _payload(args)))
    except ValueError:
        print(f"error: invalid principal {_principal(args)!r}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except VaultMeshError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_CODES.get(exc.code, 1)
    _print(args, data)
    return 0


def _print(args: argparse.Namespace, data: Any) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    op = args.vault_command
    if op == "get":
        print(data["value"])
    elif op == "set":
        print(f"stored {data['key']} version {data['version']}")
    elif op == "delete":
        print(f"deleted {data['key']}")
    elif op == "list":
        print("\n".join(data["keys"]))
    else:
        _print_mapping(data)


def _print_mapping(data: dict[str, Any], indent: str = "") -> None:
    for name, value in data.items():
        if isinstance(value, dict):
            print(f"{indent}{name}:")
            _print_mapping(value, indent + "  ")
        else:
            print(f"{indent}{name}: {value}")
