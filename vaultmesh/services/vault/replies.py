"""Which reply subjects a vault request may carry: the requesting principal's own inbox.

The vault takes the principal from the subject (``vault.<principal>.<op>``), and
the NATS server lets only P publish there. But the server itself publishes on
subjects its clients choose: a JetStream API answer goes to any reply subject the
asker names (a direct get returns stored bytes), and a consumer delivers to any
subject its creator named. Such a reflected message reaches ``vault.admin.set``
with no reply subject, or a ``$JS.ACK`` one, never an inbox: a real request waits
for its answer on an inbox. So a request is served only when its reply subject is
an inbox, and, where every identity has a private inbox (``_INBOX_<name>``, the
setting of ``vaultmesh up`` and the Swarm stack), that of the principal itself.
"""

from __future__ import annotations

from collections.abc import Callable

from vaultmesh.shared import subjects

SHARED_INBOX = subjects.INBOX_ALL.removesuffix(">")


def own_inbox(subject: str, reply: str, *, private: bool) -> bool:
    """True when ``reply`` is an inbox the principal of vault ``subject`` may read."""
    principal = subject.split(".", 2)[1] if subject.count(".") >= 2 else ""
    try:
        own = subjects.inbox_prefix(principal) + "."
    except ValueError:
        return False  # not a principal the vault would serve anyway
    return reply.startswith(own) or (not private and reply.startswith(SHARED_INBOX))


def private_inboxes(own_prefix: str) -> bool:
    """This deployment gives every identity a private inbox when the vault has one."""
    return own_prefix != SHARED_INBOX.removesuffix(".")


def checker(*, private: bool) -> Callable[[str, str], bool]:
    """``own_inbox`` for one deployment: private inboxes required or not."""
    return lambda subject, reply: own_inbox(subject, reply, private=private)
