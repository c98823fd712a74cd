"""The NATS cluster's state from its monitoring endpoints: servers, routes, stream replicas.

    python -m vaultmesh.ops.natsprobe [--servers nats-1:8222,nats-2:8222,nats-3:8222]

Prints one JSON object. ``vaultmesh swarm status`` runs this module in a one-off
container on the stack's attachable network, because NATS is not published outside
it. The monitoring port (8222) needs no NATS identity, so no seed leaves the operator's
machine for this, and it sees every stream and bucket, which no least-privilege
identity does. Standard library only: the status command sends this file's source to
``python -c`` in the image the stack runs, so it works whatever release that image is.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

MONITOR_PORT = 8222
DEFAULT_SERVERS = tuple(f"nats-{n}:{MONITOR_PORT}" for n in (1, 2, 3))
_JSZ = "/jsz?accounts=true&streams=true&config=true"


def fetch(server: str, path: str, timeout: float) -> dict[str, Any]:
    """GET ``http://server/path`` as JSON; an HTTP error status still yields its JSON body."""
    try:
        with urllib.request.urlopen(f"http://{server}{path}", timeout=timeout) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    loaded = json.loads(body)
    return loaded if isinstance(loaded, dict) else {}


def _health(server: str, timeout: float) -> str:
    answer = fetch(server, "/healthz", timeout)
    return "ok" if answer.get("status") == "ok" else str(answer.get("error") or answer)


def _routes(routez: dict[str, Any]) -> list[str]:
    # Route pooling opens several connections per peer: count peers, not connections.
    return sorted({str(r.get("remote_name") or r.get("remote_id")) for r in routez["routes"] or []})


def server_view(server: str, timeout: float) -> dict[str, Any]:
    """One server: name, health, routed peers, JetStream meta view and stream views."""
    try:
        varz = fetch(server, "/varz", timeout)
        view: dict[str, Any] = {
            "server": server,
            "name": varz.get("server_name", server),
            "version": varz.get("version"),
            "healthz": _health(server, timeout),
            "routes": _routes(fetch(server, "/routez", timeout)),
        }
        jsz = fetch(server, _JSZ, timeout)
    except (OSError, ValueError) as exc:
        name = server.removesuffix(f":{MONITOR_PORT}")
        return {"server": server, "name": name, "error": f"unreachable: {type(exc).__name__}"}
    view["meta"] = jsz.get("meta_cluster")
    view["streams"] = [
        stream
        for account in jsz.get("account_details") or []
        for stream in account.get("stream_detail") or []
    ]
    return view


def _peers(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    leader = cluster.get("leader")
    peers = [{"name": leader, "current": True, "leader": True}] if leader else []
    for replica in cluster.get("replicas") or []:
        peers.append(
            {
                "name": replica.get("name"),
                "current": bool(replica.get("current")),
                "offline": bool(replica.get("offline")),
                "lag": int(replica.get("lag") or 0),
            }
        )
    return peers


def _stream(detail: dict[str, Any]) -> dict[str, Any]:
    cluster = detail.get("cluster") or {}
    return {
        "name": detail.get("name"),
        "replicas": (detail.get("config") or {}).get("num_replicas"),
        "leader": cluster.get("leader"),
        "peers": _peers(cluster),
        "messages": (detail.get("state") or {}).get("messages"),
    }


def streams(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each stream once, as its leader sees it (a follower's view of its peers can be stale)."""
    chosen: dict[str, tuple[bool, dict[str, Any]]] = {}
    for view in views:
        for detail in view.get("streams") or []:
            name = str(detail.get("name"))
            from_leader = (detail.get("cluster") or {}).get("leader") == view.get("name")
            if name not in chosen or (from_leader and not chosen[name][0]):
                chosen[name] = (from_leader, detail)
    return [_stream(chosen[name][1]) for name in sorted(chosen)]


def _meta(views: list[dict[str, Any]]) -> dict[str, Any] | None:
    metas = [v["meta"] for v in views if v.get("meta")]
    leaders = [m for m in metas if m.get("leader")]
    meta = (leaders or metas or [None])[0]
    if meta is None:
        return None
    return {
        "leader": meta.get("leader"),
        "cluster_size": meta.get("cluster_size"),
        "peers": _peers(meta),
    }


def probe(servers: list[str], timeout: float) -> dict[str, Any]:
    """The whole report: every server's own view, the meta group, each stream once."""
    views = [server_view(server, timeout) for server in servers]
    return {
        "servers": [
            {k: v for k, v in view.items() if k not in ("meta", "streams")} for view in views
        ],
        "meta": _meta(views),
        "streams": streams(views),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the report as one JSON line."""
    parser = argparse.ArgumentParser(description="NATS cluster state from monitoring endpoints")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help="HOST:PORT,...")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per request")
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.servers.split(","), args.timeout), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
