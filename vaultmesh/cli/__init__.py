"""The ``vaultmesh`` command line."""
