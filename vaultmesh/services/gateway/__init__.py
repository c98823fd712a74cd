"""gateway: the one HTTP door (agent ingest, JSON API, dashboard, console, SSE)."""
