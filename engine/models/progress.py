"""How far loading a model has come: read by `/api/health` and the log while the render thread loads it.

Pure and torch-free: the server creates one at start, before torch is imported, and reports it from the event
loop while the render thread writes to it; every method takes the lock, so a snapshot is never half-updated.

A load goes idle -> loading -> ready | failed; loading again (a retry after a failure) starts over. Loaders
call `start(total)` once they know how many components there are, `step(name)` after each, and `note(what)`
for phases without a count (importing torch, warming up).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

LoadState = Literal["idle", "loading", "ready", "failed"]

log = logging.getLogger("opendream.models")


class LoadProgress:
    def __init__(self, name: str = "model") -> None:
        self.name = name  # how the log names what loads (the model spec)
        self._lock = threading.Lock()
        self._state: LoadState = "idle"
        self._what = "not loaded yet"
        self._done = 0
        self._total: int | None = None
        self._loaded: list[str] = []
        self._started: float | None = None
        self._seconds: float | None = None
        self._error: str | None = None

    @property
    def state(self) -> LoadState:
        with self._lock:
            return self._state

    def begin(self, what: str = "starting") -> None:
        """A load starts (or starts over): counts and a previous failure are cleared."""
        with self._lock:
            self._state = "loading"
            self._what = what
            self._done, self._total, self._loaded = 0, None, []
            self._started, self._seconds, self._error = time.monotonic(), None, None
        log.info("%s: %s", self.name, what)

    def start(self, total: int, what: str = "components") -> None:
        """`total` components are about to load, one `step` each."""
        with self._lock:
            if self._state != "loading":
                self._state, self._started, self._error = "loading", time.monotonic(), None
            self._done, self._total, self._loaded = 0, total, []
            self._what = f"loading 0/{total} {what}"
        log.info("%s: loading %d %s", self.name, total, what)

    def step(self, what: str) -> None:
        """One component (`what`: its name) has loaded."""
        with self._lock:
            self._done += 1
            self._loaded.append(what)
            total = self._total if self._total is not None else self._done
            self._what = f"loading {self._done}/{total} components ({what})"
            text = self._what
        log.info("%s: %s", self.name, text)

    def note(self, what: str) -> None:
        """A phase without a count, e.g. "warming up"."""
        with self._lock:
            self._what = what
        log.info("%s: %s", self.name, what)

    def ready(self) -> None:
        with self._lock:
            self._state = "ready"
            self._seconds = self._elapsed() or 0.0
            self._what = f"ready in {self._seconds:.1f} s"
            seconds = self._seconds
        log.info("%s: loaded and warmed up in %.1f s", self.name, seconds)

    def failed(self, reason: str) -> None:
        with self._lock:
            self._state = "failed"
            self._seconds = self._elapsed()
            self._error = reason
            self._what = "failed"
        log.warning("%s: loading failed: %s", self.name, reason)

    def snapshot(self) -> dict[str, Any]:
        """What `/api/health` reports as model.state, .progress, .done, .total, .loaded, .seconds, .error."""
        with self._lock:
            return {
                "state": self._state,
                "progress": self._what,
                "done": self._done,
                "total": self._total,
                "loaded": list(self._loaded),
                "seconds": self._seconds if self._state != "loading" else self._elapsed(),
                "error": self._error,
            }

    def _elapsed(self) -> float | None:
        return None if self._started is None else round(time.monotonic() - self._started, 3)
