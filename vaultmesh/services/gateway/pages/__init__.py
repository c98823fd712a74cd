"""The people-facing pages of the gateway: dashboard (``/``) and mission console (``/console``).

The gateway app factory includes ``router`` and calls ``mount_static(app)``.
"""

from vaultmesh.services.gateway.pages.assets import mount_static
from vaultmesh.services.gateway.pages.routes import router

__all__ = ["mount_static", "router"]
