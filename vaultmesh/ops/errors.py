"""Errors of the Swarm operator commands; messages never hold a secret value."""

from __future__ import annotations

from vaultmesh.shared.errors import VaultMeshError


class OpsError(VaultMeshError):
    """An operator command could not do what was asked."""

    code = "ops_error"


class EngineUnavailable(OpsError):
    """No Docker engine answers, it is not a Swarm manager, or the SDK is missing."""

    code = "unavailable"


class StackNotFound(OpsError):
    """The engine runs no service of the named stack."""

    code = "not_found"


class DeployFailed(OpsError):
    """``docker stack deploy`` refused the stack."""

    code = "deploy_failed"


class NotConverged(OpsError):
    """The stack did not reach its desired state within the time allowed."""

    code = "not_converged"


class ProbeFailed(OpsError):
    """The NATS check container could not run or gave no report."""

    code = "probe_failed"
