"""The uvicorn internals the gateway's own protocols build on, and whether this uvicorn has them.

uvicorn documents ``Config(http=<protocol class>)``, not the classes and
attributes the front door (ingest/frontdoor.py) and ``BoundedHttpTools`` use
behind it. pyproject.toml bounds uvicorn to the releases tested; for an install
outside that range, ``missing()`` looks at start-up for every name they use,
so that a uvicorn without them is served plainly (logged once, see service.py)
rather than failing on the first request.
"""

from __future__ import annotations

import importlib

# (module, class, names used on it or on its instances)
REQUIRED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("uvicorn.config", "Config", ("timeout_keep_alive",)),
    ("uvicorn.server", "ServerState", ("connections", "default_headers", "total_requests")),
    ("uvicorn.protocols.http.flow_control", "FlowControl", ("pause_reading", "resume_reading")),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol",
        (
            "connection_made",
            "data_received",
            "send_400_response",
            "handle_websocket_upgrade",
            "on_message_begin",
            "on_url",
            "on_header",
            "on_headers_complete",
            "on_body",
            "on_message_complete",
            "on_response_complete",
            "_unset_keepalive_if_required",
            "_should_upgrade",
            "_unsupported_upgrade_warning",
            "cycle",
            "flow",
            "loop",
            "parser",
            "pipeline",
            "server_state",
            "transport",
        ),
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "RequestResponseCycle",
        ("disconnected", "message_event", "response_complete", "response_started"),
    ),
)


def missing() -> str | None:
    """The first internal this uvicorn lacks (``module.Class.name``), or None when all are there."""
    for module_name, class_name, names in REQUIRED:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return module_name
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            return f"{module_name}.{class_name}"
        known = set(dir(cls)) | _set_up_names(cls)
        for name in names:
            if name not in known:
                return f"{module_name}.{class_name}.{name}"
    return None


def _set_up_names(cls: type) -> set[str]:
    """The names an instance's set-up code uses (its attributes among them).

    Read from the code of ``__init__`` and ``connection_made`` rather than by
    building an instance, which needs a running server.
    """
    names: set[str] = set()
    for method in ("__init__", "connection_made"):
        code = getattr(getattr(cls, method, None), "__code__", None)
        if code is not None:
            names.update(code.co_names)
    return names
