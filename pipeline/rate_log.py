"""Logging that a flood cannot turn into a log storm: hostile input, overload and lost frames all use it."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """Logs the first event of a kind, then at most once per ``period_s`` with the count in between."""

    def __init__(self, log: logging.Logger, period_s: float = 10.0) -> None:
        self.log, self.period_s, self.last, self.suppressed = log, period_s, {}, {}

    def __call__(self, kind: str, message: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if kind in self.last and now - self.last[kind] < self.period_s:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return False
        extra = f" ({self.suppressed.pop(kind)} more since last report)" if self.suppressed.get(kind) else ""
        self.log.warning("%s%s", message, extra)
        self.last[kind] = now
        return True
