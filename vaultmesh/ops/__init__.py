"""Operating the Swarm deployment: secret files, Docker secrets, deploy and status.

``secretfiles`` and ``natsprobe`` use no Docker SDK (the probe runs inside a container
on the stack's network); the other modules talk to the engine through ``docker``, which
``engine.connect`` imports only when a command needs it.
"""
