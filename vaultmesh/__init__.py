"""VaultMesh Swarm: a fleet control plane whose services talk only over NATS."""

__version__ = "0.1.0"
