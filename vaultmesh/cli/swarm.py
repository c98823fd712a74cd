"""`vaultmesh swarm`: the Swarm stack's operator commands (Docker SDK).

    vaultmesh swarm secrets OUT_DIR [--files-only]
    vaultmesh swarm deploy [--secrets OUT_DIR] [--image IMAGE] [-c stack.yml] [--no-wait]
    vaultmesh swarm status [--json] [--no-nats]

``secrets`` writes the missing secret files into OUT_DIR (``vaultmesh.ops.secretfiles``)
and creates the missing Docker secrets (``vaultmesh.ops.dockersecrets``); ``deploy``
runs ``docker stack deploy`` with the secret names and image of ``vaultmesh.ops.deploy``
and waits until every service is well; ``status`` shows services, replicas, tasks and
health, the provisioning step's outcome, and the NATS cluster and stream replicas
(``vaultmesh.ops.natscheck``). The engine comes from ``DOCKER_HOST`` (a Swarm manager);
``--stack`` defaults to ``$VAULTMESH_STACK`` or ``vaultmesh``. Secret values are never
printed. Exit codes: 0 ok, 1 a problem (listed), 2 usage, 4 no such stack, 69 no engine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from vaultmesh.ops import secretfiles
from vaultmesh.ops.errors import OpsError
from vaultmesh.ops.natsprobe import DEFAULT_SERVERS

EXIT_CODES = {"not_found": 4, "unavailable": 69}


def register(sub: Any) -> None:
    """Add the `swarm` command group."""
    parser = sub.add_parser("swarm", help="secrets, deploy and status of the Swarm stack")
    ops = parser.add_subparsers(dest="swarm_command", metavar="OPERATION", required=True)
    stack = argparse.ArgumentParser(add_help=False)
    stack.add_argument(
        "--stack", default=os.environ.get("VAULTMESH_STACK", "vaultmesh"), help="stack name"
    )
    secrets = ops.add_parser("secrets", help="generate missing secret files, create Docker secrets")
    secrets.add_argument("out", type=Path, metavar="OUT_DIR", help="directory of the secret files")
    secrets.add_argument("--files-only", action="store_true", help="write the files, no Docker")
    secrets.set_defaults(func=_secrets)
    deploy = ops.add_parser("deploy", help="docker stack deploy, then wait", parents=[stack])
    deploy.add_argument("-c", "--compose-file", type=Path, default=Path("stack.yml"))
    deploy.add_argument("--image", help="image of every service (default: what runs now)")
    deploy.add_argument("--secrets", type=Path, metavar="OUT_DIR", help="run `secrets` first")
    deploy.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    deploy.add_argument("--no-wait", action="store_true", help="return once Swarm has the stack")
    deploy.set_defaults(func=_deploy)
    status = ops.add_parser("status", help="services, health, NATS and streams", parents=[stack])
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.add_argument("--no-nats", action="store_true", help="skip the NATS check container")
    status.add_argument("--nats-servers", default=",".join(DEFAULT_SERVERS), help="HOST:PORT,...")
    status.add_argument("--probe-image", help="image of the NATS check (default: nats-1's)")
    status.set_defaults(func=_status)


def _run(command: Any, args: argparse.Namespace) -> int:
    try:
        return int(command(args))
    except OpsError as exc:
        print(f"vaultmesh swarm {args.swarm_command}: {exc.message}", file=sys.stderr)
        return EXIT_CODES.get(exc.code, 1)


def _create_secrets(out: Path) -> None:
    from vaultmesh.ops import dockersecrets, engine

    files = secretfiles.generate(out)
    print(f"{len(files)} secret files in {out}")
    client = engine.connect()
    try:
        for outcome in dockersecrets.create(client, files):
            print(f"{outcome.action + ':':<13}{outcome.name}")
    finally:
        client.close()


def _secrets(args: argparse.Namespace) -> int:
    def command(args: argparse.Namespace) -> int:
        if args.files_only:
            files = secretfiles.generate(args.out)
            print(f"{len(files)} secret files in {args.out}")
        else:
            _create_secrets(args.out)
        return 0

    return _run(command, args)


def _deploy_with(client: Any, args: argparse.Namespace) -> int:
    from vaultmesh.ops import deploy, report

    variables = deploy.stack_env(client, args.stack, args.image, dict(os.environ))
    for name, value in sorted(variables.items()):
        print(f"{name}={value}")
    print(deploy.stack_deploy(args.compose_file, args.stack, variables).rstrip())
    if args.no_wait:
        return 0
    services = deploy.wait(client, args.stack, args.timeout)
    print("\n".join(report.service_lines(services)))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from vaultmesh.ops import engine

    def command(args: argparse.Namespace) -> int:
        if not args.compose_file.is_file():
            print(f"vaultmesh swarm deploy: no {args.compose_file}", file=sys.stderr)
            return 2
        if args.secrets is not None:
            _create_secrets(args.secrets)
        client = engine.connect()
        try:
            return _deploy_with(client, args)
        finally:
            client.close()

    return _run(command, args)


def expected_streams() -> list[str]:
    """Every stream and bucket stream the provisioning step makes."""
    from vaultmesh.shared import provision, subjects
    from vaultmesh.shared.streams import StreamLimits

    names = [str(c.name) for c in provision.stream_configs(StreamLimits())]
    return names + [subjects.kv_stream(b.bucket) for b in provision.bucket_configs(1)]


def _status_with(client: Any, args: argparse.Namespace) -> int:
    from vaultmesh.ops import natscheck, report, stackstate
    from vaultmesh.ops.errors import ProbeFailed

    services = stackstate.collect(client, args.stack)
    probe: dict[str, Any] | None = None
    failed = ""
    if not args.no_nats:
        try:
            servers = args.nats_servers.split(",")
            probe = natscheck.run(client, args.stack, servers, args.probe_image)
        except ProbeFailed as exc:
            failed = exc.message
    built = report.build(args.stack, services, probe, expected_streams())
    if failed:
        built["ok"] = False
        built["problems"].append(failed)
    print(json.dumps(built, indent=2) if args.json else report.render(built, services))
    return 0 if built["ok"] else 1


def _status(args: argparse.Namespace) -> int:
    from vaultmesh.ops import engine

    def command(args: argparse.Namespace) -> int:
        client = engine.connect()
        try:
            return _status_with(client, args)
        finally:
            client.close()

    return _run(command, args)
