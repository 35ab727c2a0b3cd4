"""Keeping Python's cycle collector from pausing the server.

A full (generation 2) collection walks every tracked object while holding the GIL. After torch, diffusers
and transformers are imported that is ~400,000 objects and ~200 ms on the 2-core machine, paid again at every
full collection. A 100,000-event import allocates a few million objects in seconds and so set off a dozen
full collections of a growing heap: 50 ms at first, 400 ms at the end, each one a stall for every other
canvas's commands (measured with `gc.callbacks`, tests/security/test_sec_imports.py).

Two remedies, as large Python services use them (Instagram's `gc.freeze`): objects that live as long as the
process are moved out of the collector's sight once loaded, and a bulk allocation runs with automatic
collection paused. Reference counting still frees everything that is not a cycle; our events and states
hold no cycles, so nothing accumulates meanwhile.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_pausing = 0  # bulk allocations in progress, in any thread


def freeze_long_lived() -> None:
    """Everything alive now (modules, the loaded model, caches) is exempt from future collections. No
    collection first: that would be the very pause this avoids (the few cycles of garbage frozen with the
    rest are the price)."""
    gc.freeze()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Automatic collection off while the block allocates in bulk; on again when the last such block ends."""
    global _pausing
    with _lock:
        _pausing += 1
        if _pausing == 1:
            gc.disable()
    try:
        yield
    finally:
        with _lock:
            _pausing -= 1
            if _pausing == 0:
                gc.enable()
