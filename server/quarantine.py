"""Failures that are not one layer's: a canvas whose state cannot be scheduled is set aside with a reason and
retried with exponential back-off, capped, while the worker goes on with the others.

Also `ThrottledLog`: the same failure is logged at most once per back-off step, however often it recurs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Backoff:
    base_s: float = 1.0
    cap_s: float = 300.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failure in a row (1, 2, 4, ... up to the cap)."""
        return min(self.cap_s, self.base_s * 2 ** max(0, attempts - 1))


@dataclass
class Quarantine:
    canvas_id: str
    reason: str
    attempts: int
    since: float  # wall clock of the first failure
    last_attempt: float  # monotonic
    retry_at: float  # monotonic

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        return {
            "reason": self.reason,
            "attempts": self.attempts,
            "since": self.since,
            "retry_in_s": round(max(0.0, self.retry_at - now), 1),
        }


@dataclass
class Quarantines:
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    by_canvas: dict[str, Quarantine] = field(default_factory=dict)

    def fail(self, canvas_id: str, reason: str) -> Quarantine:
        now = self.clock()
        current = self.by_canvas.get(canvas_id)
        attempts = 1 if current is None else current.attempts + 1
        since = time.time() if current is None else current.since
        entry = Quarantine(canvas_id, reason, attempts, since, now, now + self.backoff.delay(attempts))
        self.by_canvas[canvas_id] = entry
        return entry

    def clear(self, canvas_id: str) -> bool:
        return self.by_canvas.pop(canvas_id, None) is not None

    def get(self, canvas_id: str) -> Quarantine | None:
        return self.by_canvas.get(canvas_id)

    def due(self, canvas_id: str) -> bool:
        entry = self.by_canvas.get(canvas_id)
        return entry is None or self.clock() >= entry.retry_at

    def hasten(self, canvas_id: str, soonest_s: float = 1.0) -> float | None:
        """A change to the canvas may have cured it: retry soon (never sooner than `soonest_s` after the last
        attempt, so a flood of edits is no tight loop). Returns the seconds until the retry, or None."""
        entry = self.by_canvas.get(canvas_id)
        if entry is None:
            return None
        entry.retry_at = min(entry.retry_at, entry.last_attempt + soonest_s)
        return max(0.0, entry.retry_at - self.clock())


class ThrottledLog:
    """Logs a message once, then again only after its back-off step has passed (with how often it recurred)."""

    def __init__(self, logger: logging.Logger, backoff: Backoff | None = None) -> None:
        self.logger = logger
        self.backoff = backoff or Backoff(base_s=10.0, cap_s=600.0)
        self._seen: dict[str, tuple[float, int, int]] = {}  # key -> (next allowed, step, suppressed)

    def log(self, level: int, key: str, message: str, *args: Any, exc_info: Any = None) -> bool:
        now = time.monotonic()
        allowed_at, step, suppressed = self._seen.get(key, (0.0, 0, 0))
        if now < allowed_at:
            self._seen[key] = (allowed_at, step, suppressed + 1)
            return False
        if suppressed:
            message += f" (and {suppressed} times more since it was last logged)"
        step += 1
        self._seen[key] = (now + self.backoff.delay(step), step, 0)
        if len(self._seen) > 10_000:  # keys are failure reasons: bounded, but never unbounded
            self._seen.clear()
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True
