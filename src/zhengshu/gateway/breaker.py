"""A circuit breaker per upstream: open after N consecutive failures, one probe after a cool-down.

State is per gateway process (each process learns of a failing upstream from its own calls within N calls).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    __slots__ = ("clock", "cooldown_s", "failures", "opened_at", "probing", "state", "threshold")

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.state = "closed"  # closed | open | half_open
        self.opened_at = 0.0
        self.probing = False

    def allow(self) -> bool:
        """Whether a call may go to the upstream now (in half-open state: one probe at a time)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self.state = "half_open"
        if self.probing:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.state = "closed"
        self.probing = False

    def failure(self) -> None:
        self.probing = False
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.threshold:
            self.state = "open"
            self.opened_at = self.clock()

    def retry_after(self) -> float:
        if self.state != "open":
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))
