"""A persistent (immutable, structurally shared) map for the fold's layer table.

Folding one event used to copy the whole layer dict, so an opacity change on a 5,000-layer canvas cost 5,000
pointer copies. Here the keys are spread by hash over a two-level trie of 32-way tuples with small dicts as
leaves: a new version copies only the path to the one leaf it changes (two 32-slot tuples and a leaf of a few
entries), and shares everything else with the version it came from. Old versions are never changed, so the
fold stays pure: a state from before an event is the same object, with the same contents, after it.

`PMapBuilder` is the transient form used while folding: it changes nodes it copied itself in place (it owns
them; nobody else can see them until `freeze`), so folding many events into one draft copies each touched node
once, not once per event.

Iteration follows the trie, not insertion order; a canvas's stack order is `CanvasState.order`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

V = TypeVar("V")

_WIDTH = 32
_MASK = _WIDTH - 1
_SHIFT = 5
_EMPTY_ROOT: tuple[Any, ...] = (None,) * _WIDTH
_MISSING: Any = object()

# A leaf is a dict key -> value; a middle node a tuple of 32 leaves (or None); the root a tuple of 32 middles.
_Leaf = dict[str, Any]
_Middle = tuple[_Leaf | None, ...]


class PMap(Mapping[str, V], Generic[V]):
    """An immutable map from str to V that shares structure with the versions derived from it."""

    __slots__ = ("_len", "_root")

    def __init__(self, items: Mapping[str, V] | Iterable[tuple[str, V]] = ()) -> None:
        if isinstance(items, PMap):
            self._root: tuple[_Middle | None, ...] = items._root
            self._len: int = items._len
            return
        builder: PMapBuilder[V] = PMapBuilder(_empty())
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            builder[key] = value
        built = builder.freeze()
        self._root, self._len = built._root, built._len

    @classmethod
    def _make(cls, root: tuple[_Middle | None, ...], length: int) -> PMap[V]:
        made = cls.__new__(cls)
        made._root = root
        made._len = length
        return made

    # --- reads (the hot ones written out: each is called a few times per command) ---------------------------

    def __getitem__(self, key: str) -> V:
        h = hash(key)
        middle = self._root[h & _MASK]
        if middle is not None:
            leaf = middle[(h >> _SHIFT) & _MASK]
            if leaf is not None:
                return leaf[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        h = hash(key)
        middle = self._root[h & _MASK]
        if middle is None:
            return default
        leaf = middle[(h >> _SHIFT) & _MASK]
        if leaf is None:
            return default
        return leaf.get(key, default)

    def __contains__(self, key: object) -> bool:
        h = hash(key)
        middle = self._root[h & _MASK]
        if middle is None:
            return False
        leaf = middle[(h >> _SHIFT) & _MASK]
        return leaf is not None and key in leaf

    def __len__(self) -> int:
        return self._len

    def _leaves(self) -> Iterator[_Leaf]:
        for middle in self._root:
            if middle is not None:
                for leaf in middle:
                    if leaf:
                        yield leaf

    def __iter__(self) -> Iterator[str]:
        for leaf in self._leaves():
            yield from leaf

    def keys(self) -> Any:
        return list(self)

    def values(self) -> Any:
        return [value for leaf in self._leaves() for value in leaf.values()]

    def items(self) -> Any:
        return [item for leaf in self._leaves() for item in leaf.items()]

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Mapping) or len(other) != self._len:
            return False
        if isinstance(other, PMap) and other._root is self._root:
            return True
        return all(other.get(key, _MISSING) == value for leaf in self._leaves() for key, value in leaf.items())

    __hash__ = None  # type: ignore[assignment]  # like dict: equal by contents, so not hashable

    def __repr__(self) -> str:
        return f"PMap({dict(self.items())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PMap, (dict(self.items()),))

    def copy(self) -> dict[str, V]:
        """A plain dict of the same items (what `MappingProxyType.copy()` gave callers before)."""
        return dict(self.items())


def _empty() -> PMap[Any]:
    return PMap._make(_EMPTY_ROOT, 0)


class PMapBuilder(Generic[V]):
    """A mutable draft of a PMap: copies a node the first time it changes it, then changes its copy in place.

    A draft that changes nothing costs nothing and freezes back into the same map."""

    __slots__ = ("_base", "_len", "_middles", "_owned")

    def __init__(self, base: PMap[V]) -> None:
        self._base = base
        self._len = base._len
        self._middles: dict[int, list[_Leaf | None]] = {}  # root slot -> this draft's copy of that middle
        # ids of the leaves this draft made, which it may change in place. The draft holds them, so no other
        # object can be given one of these ids while they are in the set.
        self._owned: set[int] = set()

    def _middle(self, slot: int) -> Sequence[_Leaf | None] | None:
        middle = self._middles.get(slot)
        return self._base._root[slot] if middle is None else middle

    def _leaf(self, key: object) -> _Leaf | None:
        h = hash(key)
        middle = self._middles.get(h & _MASK)
        if middle is None:
            middle = self._base._root[h & _MASK]
            if middle is None:
                return None
        return middle[(h >> _SHIFT) & _MASK]

    def _leaf_for_write(self, key: str) -> _Leaf:
        h = hash(key)
        slot = h & _MASK
        middle = self._middles.get(slot)
        if middle is None:
            shared = self._base._root[slot]
            middle = [None] * _WIDTH if shared is None else list(shared)
            self._middles[slot] = middle
        index = (h >> _SHIFT) & _MASK
        leaf = middle[index]
        if leaf is None:
            leaf = {}
            middle[index] = leaf
            self._owned.add(id(leaf))
        elif id(leaf) not in self._owned:
            leaf = leaf.copy()
            middle[index] = leaf
            self._owned.add(id(leaf))
        return leaf

    def __getitem__(self, key: str) -> V:
        leaf = self._leaf(key)
        if leaf is None:
            raise KeyError(key)
        return leaf[key]

    def get(self, key: str, default: Any = None) -> Any:
        leaf = self._leaf(key)
        return default if leaf is None else leaf.get(key, default)

    def __contains__(self, key: object) -> bool:
        leaf = self._leaf(key)
        return leaf is not None and key in leaf

    def __setitem__(self, key: str, value: V) -> None:
        leaf = self._leaf_for_write(key)
        if key not in leaf:
            self._len += 1
        leaf[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        del self._leaf_for_write(key)[key]
        self._len -= 1

    def __len__(self) -> int:
        return self._len

    def _leaves(self) -> Iterator[_Leaf]:
        for slot in range(_WIDTH):
            middle = self._middle(slot)
            if middle is not None:
                for leaf in middle:
                    if leaf:
                        yield leaf

    def __iter__(self) -> Iterator[str]:
        for leaf in self._leaves():
            yield from leaf

    def values(self) -> list[V]:
        return [value for leaf in self._leaves() for value in leaf.values()]

    def items(self) -> list[tuple[str, V]]:
        return [item for leaf in self._leaves() for item in leaf.items()]

    def freeze(self) -> PMap[V]:
        """The map as it stands. Its nodes now belong to the map: later writes to the builder copy them again."""
        if not self._middles:
            return self._base
        root = list(self._base._root)
        for slot, middle in self._middles.items():
            root[slot] = tuple(middle)
        self._middles = {}
        self._owned = set()
        frozen: PMap[V] = PMap._make(tuple(root), self._len)
        self._base = frozen
        return frozen
