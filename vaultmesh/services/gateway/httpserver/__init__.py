"""The HTTP server below the app: uvicorn, and the limits every connection is held to.

A connection arrives at uvicorn (server.py), which builds the front door for it
(ingest/frontdoor.py; plain uvicorn when this uvicorn lacks the internals it
builds on, internals.py). The connection guard (connections.py) admits it or
answers 503 past the cap; requests that are not plain heartbeat posts go on to
``BoundedHttpTools`` (bounded_httptools.py), uvicorn's own protocol held to the
same limits (limits.py), and through it to the FastAPI app. Refusals and the
front door's answers are written whole (answers.py). Nothing here imports the
app's routes.
"""
