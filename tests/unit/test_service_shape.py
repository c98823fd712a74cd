"""Every service package has the same shape (issue 13): one builder, errors under the shared
root, and ``nats`` imported only by the bus adapters its package docstring names."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from vaultmesh.shared.errors import VaultMeshError

SERVICES = Path(__file__).resolve().parents[2] / "vaultmesh" / "services"
PACKAGES = ("fleet", "vault", "logger", "agent")
# The gateway is organised in subpackages by concept; builder, errors and entry point agree.
WITH_GATEWAY = (*PACKAGES, "gateway")
# The modules of each package that may talk to NATS directly (see its docstring).
BUS_ADAPTERS = {
    "fleet": {"tail", "writer", "history", "lease", "statewatch", "service"},
    "vault": {"audit", "kv_store", "kv_index", "kv_lease", "service"},
    "logger": {"capture", "feed", "alerts", "authwatch", "replica", "service"},
    "agent": {"nats_sender"},
}
# The builder names the packages used before they shared one.
BUILDER_NAMES = {"build", "builder", "build_for", "build_agent", "build_logger"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _imports_nats(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nats":
            return True
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "nats" for a in node.names):
            return True
    return False


@pytest.mark.parametrize("package", PACKAGES)
def test_only_bus_adapters_import_nats(package: str) -> None:
    importing = {
        path.stem for path in (SERVICES / package).glob("*.py") if _imports_nats(_tree(path))
    }
    assert importing <= BUS_ADAPTERS[package]
    docstring = importlib.import_module(f"vaultmesh.services.{package}").__doc__ or ""
    for module in BUS_ADAPTERS[package]:
        assert f"``{module}``" in docstring


@pytest.mark.parametrize("package", WITH_GATEWAY)
def test_one_public_builder_named_build_for(package: str) -> None:
    builders = {
        f"{path.relative_to(SERVICES / package).with_suffix('')}.{node.name}".replace("/", ".")
        for path in (SERVICES / package).rglob("*.py")
        for node in _tree(path).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in BUILDER_NAMES
    }
    assert builders == {"service.build_for"}
    build_for = importlib.import_module(f"vaultmesh.services.{package}.service").build_for
    assert list(inspect.signature(build_for).parameters)[:2] == ["settings", "clock"]


@pytest.mark.parametrize("package", WITH_GATEWAY)
def test_errors_derive_from_the_shared_root(package: str) -> None:
    errors = importlib.import_module(f"vaultmesh.services.{package}.errors")
    defined = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, BaseException)
        and cls.__module__ == errors.__name__
    ]
    assert defined
    assert [cls for cls in defined if not issubclass(cls, VaultMeshError)] == []


@pytest.mark.parametrize("package", ["fleet", "vault", "logger", "gateway"])
def test_main_runs_the_shared_runtime_with_build_for(package: str) -> None:
    source = (SERVICES / package / "__main__.py").read_text(encoding="utf-8")
    assert "sys.exit(run_service(" in source
    assert "build_for))" in source
