"""Static assets (CSS, JS, SVG) served from package files: no CDN, works offline.

The files are small and fixed at install time, so they are read once and
served from memory with an ETag; ``Cache-Control: no-cache`` makes browsers
revalidate, so an upgraded gateway never leaves a stale script behind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from vaultmesh.services.gateway.auth.authenticator import require_admin_page

MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    """One static file, in memory."""

    body: bytes
    media_type: str
    etag: str


@cache
def load_assets() -> dict[str, Asset]:
    """Every servable file of ``static/``, by file name."""
    assets = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            assets[entry.name] = Asset(body, MEDIA_TYPES[suffix], etag)
    return assets


async def static_file(name: str, request: Request) -> Response:
    """Serve one asset by exact name (no paths, so no traversal), honouring If-None-Match."""
    asset = load_assets().get(name)
    if asset is None:
        return Response("not found\n", status_code=404, media_type="text/plain")
    headers = {
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def mount_static(app: FastAPI) -> None:
    """Serve ``/static/<name>`` to signed-in users (the contract puts assets behind auth)."""
    router = APIRouter(dependencies=[Depends(require_admin_page)], include_in_schema=False)
    router.add_api_route("/static/{name}", static_file, methods=["GET"])
    app.include_router(router)
