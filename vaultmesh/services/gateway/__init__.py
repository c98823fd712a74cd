"""gateway: the one HTTP door (agent ingest, JSON API, dashboard, console, SSE).

Where things are:

* ``service.py`` — the process' component: builds the app, state and HTTP
  server (``build_for``), starts and stops them, in that one place;
* ``app.py`` — the FastAPI app: routers, middleware, error shape, OpenAPI;
* ``state.py`` — what every request shares (``GatewayState``: settings, bus
  clients, batcher, metrics, shutdown signal);
* ``ingest/`` — ``POST /api/agent/heartbeat``: where a heartbeat is answered
  (the front door's fast path and the FastAPI route, one handler);
* ``httpserver/`` — uvicorn and the HTTP limits of every connection;
* ``auth/`` — tokens, sessions, identity JWTs, sign-in;
* ``live/`` — ``GET /events`` (Server-Sent Events);
* ``pages/`` — the dashboard and the mission console (HTML);
* ``api.py`` (the admin JSON API), ``ops.py`` (health, readiness, metrics);
* shared HTTP helpers: ``bodies.py`` (reading bodies), ``http_errors.py``
  (the ``{"error"}`` shape), ``middleware.py`` (body limit, request metrics);
* bus clients: ``publisher.py`` (acknowledged publishes), ``fleet_client.py``
  (fleet-state requests), ``audit.py``, ``buswatch.py``.

A request arrives at uvicorn with the front door as its protocol: plain
heartbeat posts are answered there; everything else goes through the
middleware to the routers above.
"""
