"""Every error the gateway defines derives from the shared root, ``VaultMeshError``."""

from __future__ import annotations

import inspect

from vaultmesh.services.gateway import errors
from vaultmesh.shared.errors import VaultMeshError


def test_every_gateway_error_is_a_vaultmesh_error() -> None:
    defined = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    ]
    assert len(defined) >= 7
    assert [cls.__name__ for cls in defined if not issubclass(cls, VaultMeshError)] == []
