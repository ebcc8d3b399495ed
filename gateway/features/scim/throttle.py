"""Per-replica throttles of SCIM traffic: a token bucket per SCIM token, and a cap on failed
authentications per client address (guessing tokens)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable


class TokenBuckets:
    """`rate` requests a second per key, bursts up to `burst`; bounded in keys."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max = max_keys
        self._state: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def take(self, key: Hashable) -> float:
        """0 when the request may go on, else the seconds to wait before the next one."""
        now = time.monotonic()
        tokens, last = self._state.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._state[key] = (tokens, now)
            wait = (1 - tokens) / self._rate
        self._state.move_to_end(key)
        while len(self._state) > self._max:
            self._state.popitem(last=False)
        return wait


class FailureWindow:
    """At most `limit` failures per key in `window` seconds; then refuse until it ends."""

    def __init__(self, limit: int, window: float, max_keys: int = 10_000) -> None:
        self._limit = limit
        self._window = window
        self._max = max_keys
        self._state: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    def blocked(self, key: Hashable) -> float:
        count, start = self._state.get(key, (0, 0.0))
        left = start + self._window - time.monotonic()
        if count >= self._limit and left > 0:
            return left
        return 0.0

    def failed(self, key: Hashable) -> None:
        now = time.monotonic()
        count, start = self._state.get(key, (0, now))
        if start + self._window < now:
            count, start = 0, now
        self._state[key] = (count + 1, start)
        self._state.move_to_end(key)
        while len(self._state) > self._max:
            self._state.popitem(last=False)
