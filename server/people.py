"""People's display names and colours on a canvas: cleaned, rate-limited, and stored with their identity
(server/store/sql.py's `people` table), so that everyone's history names the people who are offline or came
before. Names are not authentication: the token is the security boundary, a name only labels a user id.

What a hostile client can make of this is bounded: a name is at most 64 characters with no control or format
characters (no line breaks, no right-to-left overrides), a colour is `#rrggbb` or grey; a canvas keeps its 200
most recently seen people (50 per token); a canvas takes at most `PeopleLimits.changes_burst` new or renamed
people at once and then `changes_per_s`, and one user renames at most `renames_burst` times at once and then once
per `1 / renames_per_s` seconds. A change past a limit is still shown live with the cursor (presence carries
the name), but not stored or announced until a later hello.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

from server.protocol import COLOUR_PATTERN
from server.store.sql import PeopleStore, Person

MAX_NAME = 64
DEFAULT_COLOUR = "#888888"
_HIDDEN = frozenset({"Cf", "Co", "Cs", "Cn", "Zl", "Zp"})  # format (bidi overrides, zero-width), private, unassigned


def clean_name(value: str) -> str:
    """The name as shown: control characters become spaces, format characters go, whitespace runs fold to one
    space, at most MAX_NAME characters. Empty when nothing is left."""
    text = unicodedata.normalize("NFC", value[: MAX_NAME * 8])  # a bound on the work before cleaning
    kept = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text if unicodedata.category(ch)
                   not in _HIDDEN)  # fmt: skip
    return " ".join(kept.split())[:MAX_NAME].strip()


def clean_colour(value: str) -> str:
    return value.lower() if COLOUR_PATTERN.match(value) else DEFAULT_COLOUR


@dataclass(frozen=True)
class PeopleLimits:
    changes_per_s: float = 1.0  # new or renamed people a canvas stores per second, sustained
    changes_burst: float = 60.0  # ... and at once (a class joining together)
    renames_per_s: float = 1 / 30  # renames of one user, sustained
    renames_burst: float = 5.0
    tracked: int = 10_000  # rate buckets kept in memory (least recently used dropped first)


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens, self.stamp = burst, now

    def take(self, rate: float, burst: float, now: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Buckets:
    """Token buckets by key, at most `size` of them: a flood of fresh keys forgets the oldest, which then start
    full again; the canvas's bucket, taken by every change, keeps the flood itself in check."""

    def __init__(self, rate: float, burst: float, size: int) -> None:
        self.rate, self.burst, self.size = rate, burst, size
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def peek(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        return bucket is None or min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate) >= 1

    def take(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            while len(self._buckets) > self.size:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        return bucket.take(self.rate, self.burst, now)


class PeopleBook:
    """Records a person at each hello and tells whether the others should hear of it (new, or renamed)."""

    def __init__(self, store: PeopleStore, limits: PeopleLimits | None = None) -> None:
        self.store = store
        self.limits = limits = limits or PeopleLimits()
        self._canvases = _Buckets(limits.changes_per_s, limits.changes_burst, limits.tracked)
        self._renames = _Buckets(limits.renames_per_s, limits.renames_burst, limits.tracked)

    async def arrive(self, canvas_id: str, person: Person, token_id: str) -> tuple[bool, list[Person]]:
        """Store `person` (name already cleaned; an empty name is not stored) and return (whether it is news,
        the canvas's people as stored now)."""
        if not person.name:
            return False, await asyncio.to_thread(self.store.people, canvas_id)
        known = await asyncio.to_thread(self.store.person, canvas_id, person.user)
        unchanged = known is not None and (known.name, known.colour) == (person.name, person.colour)
        change = unchanged or self._may_change(canvas_id, person.user, renaming=known is not None)
        news = await asyncio.to_thread(self.store.record, canvas_id, person, token_id, change=change)
        return news, await asyncio.to_thread(self.store.people, canvas_id)

    def _may_change(self, canvas_id: str, user: str, renaming: bool) -> bool:
        """Both budgets must allow it; the canvas's is spent only when the user's allows the rename."""
        now = time.monotonic()
        key = f"{canvas_id}\x00{user}"
        if renaming and not self._renames.peek(key, now):
            return False
        if not self._canvases.take(canvas_id, now):
            return False
        return not renaming or self._renames.take(key, now)
