"""The library every VaultMesh service and tool shares."""
