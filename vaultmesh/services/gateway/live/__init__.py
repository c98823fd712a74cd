"""Live events: ``GET /events``, Server-Sent Events from the EVENTS and HEARTBEATS streams.

The route (sse.py) checks the caller and a client slot, then opens a feed
(feeds.py): one ordered JetStream consumer per stream, started right after
the client's resume cursor (cursor.py, from ``Last-Event-ID``), both feeding
one bounded queue. The response writes each item as an SSE block whose
``id:`` is the cursor after it, keeps the connection alive when nothing
happens, and ends when the client leaves or the gateway stops.
"""
