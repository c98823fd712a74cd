"""Who may call the gateway, and how people sign in and out.

A request's credentials are checked by the ``Authenticator``
(authenticator.py), which routes declare as a dependency (``require_admin``
for the JSON API and ``/events``, ``require_admin_page`` for pages) and the
heartbeat handler calls for agent tokens. It looks, in order, for an admin
bearer token (tokens.py: digests compared in constant time), the session
cookie (sessions.py: HMAC-signed, revoked on logout), then an identity JWT
from an access proxy (identity.py, its keys in identity_keys.py).

``GET/POST /login`` and ``POST /logout`` (login.py) issue and end sessions;
refused sign-ins are throttled per address (throttle.py), and a logout reaches
every replica through the SESSION_REVOCATIONS bucket (revocations.py).
"""
