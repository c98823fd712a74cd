"""Heartbeat ingest: where ``POST /api/agent/heartbeat`` is answered, by either of two paths.

Every node posts a heartbeat per interval, so this is the gateway's hot path.
A post takes one of two paths to the same ``HeartbeatHandler`` (handler.py:
authenticate, validate, submit, answer):

* the fast path — a *plain* post (``POST /api/agent/heartbeat HTTP/1.x`` with
  exactly one Content-Length within the body limit, no Transfer-Encoding,
  Expect or Upgrade, no query string) on a connection that has sent nothing
  else yet. The front door (frontdoor.py), the HTTP protocol uvicorn runs per
  connection, frames it from the socket's bytes (framing.py), hands headers
  and body to the handler and writes the answer in one piece: no ASGI, no
  request task. This is how agents post.
* the ASGI path — any other heartbeat post (chunked, ``Expect:
  100-continue``, a query string, over the body limit, or after the
  connection's first other request) goes to uvicorn with the rest of the
  connection, through the app's middleware (body limit, request metrics) to
  the FastAPI route (route.py), which reads the body and calls the handler.

Either way the handler submits the heartbeat to the batcher (batcher.py),
which publishes heartbeats from every connection as JetStream batches to
HEARTBEATS, and answers 200 only once the stream's ack covers it.
contract.py holds the path and the success body both paths answer with.
"""
