"""Sign-in throttling: a client address that keeps presenting wrong admin tokens is
refused for a while (HTTP 429 with ``Retry-After``), so ``POST /login`` cannot be
used to guess a token at speed.

Only refused attempts count, over a sliding window; a successful sign-in clears
the address. While an address is blocked even a right token is refused, so a
guesser learns nothing from the answer. Bearer-token API calls are not
throttled here: tokens are long random strings, and the form is the one place
a person types one. Memory is bounded: past ``max_addresses`` the addresses
seen longest ago are forgotten first.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from vaultmesh.services.gateway.errors import TooManyAttempts
from vaultmesh.shared.clock import Clock


class LoginThrottle:
    """At most ``attempts`` refused sign-ins per address within ``window_s`` seconds."""

    def __init__(
        self, clock: Clock, attempts: int, window_s: float, max_addresses: int = 10_000
    ) -> None:
        self._clock = clock
        self._attempts = attempts
        self._window_s = window_s
        self._max_addresses = max_addresses
        # address -> times (epoch seconds) of its recent refused attempts, oldest first
        self._refused: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, address: str) -> None:
        """Raise ``TooManyAttempts`` while ``address`` is blocked."""
        times = self._recent(address)
        if times is not None and len(times) >= self._attempts:
            wait = times[0] + self._window_s - self._now()
            raise TooManyAttempts(max(1, math.ceil(wait)))

    def refused(self, address: str) -> None:
        """Note one refused sign-in from ``address``."""
        times = self._recent(address)
        if times is None:
            times = self._refused[address] = deque(maxlen=self._attempts)
            while len(self._refused) > self._max_addresses:
                self._refused.popitem(last=False)
        else:
            self._refused.move_to_end(address)
        times.append(self._now())

    def succeeded(self, address: str) -> None:
        """Forget the refused attempts of ``address`` (it signed in)."""
        self._refused.pop(address, None)

    def _recent(self, address: str) -> deque[float] | None:
        times = self._refused.get(address)
        if times is None:
            return None
        horizon = self._now() - self._window_s
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._refused[address]
            return None
        return times

    def _now(self) -> float:
        return self._clock.now().timestamp()
