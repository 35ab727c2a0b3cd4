"""A persistent (immutable, structurally shared) map for the fold's layer table.

Folding one event used to copy the whole layer dict, so an opacity change on a 5,000-layer canvas cost 5,000
pointer copies. Here the keys are spread by hash over 64 small dicts (the leaves) held in a tuple: a new version
copies the tuple (64 pointers) and the one leaf it changes (1/64 of the map), and shares every other leaf with
the version it came from. Old versions are never changed, so the fold stays pure: a state from before an event
is the same object, with the same contents, after it. One level, not a deeper trie: the leaves stay full enough
that walking every value (the DAG's descendants, GET state) runs at dict speed.

`PMapBuilder` is the transient form used while folding: it changes leaves it copied itself in place (it owns
them; nobody else can see them until `freeze`), so folding many events into one draft copies each touched leaf
once, not once per event.

Iteration follows the leaves, not insertion order; a canvas's stack order is `CanvasState.order`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, Generic, TypeVar

V = TypeVar("V")

_WIDTH = 64
_MASK = _WIDTH - 1
_EMPTY_ROOT: tuple[dict[str, Any] | None, ...] = (None,) * _WIDTH
_MISSING: Any = object()


class PMap(Mapping[str, V], Generic[V]):
    """An immutable map from str to V that shares structure with the versions derived from it."""

    __slots__ = ("_len", "_root")

    def __init__(self, items: Mapping[str, V] | Iterable[tuple[str, V]] = ()) -> None:
        if isinstance(items, PMap):
            self._root: tuple[dict[str, V] | None, ...] = items._root
            self._len: int = items._len
            return
        leaves: list[dict[str, V] | None] = [None] * _WIDTH
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            slot = hash(key) & _MASK
            leaf = leaves[slot]
            if leaf is None:
                leaf = leaves[slot] = {}
            leaf[key] = value
        self._root = tuple(leaves)
        self._len = sum(len(leaf) for leaf in leaves if leaf is not None)

    @classmethod
    def _make(cls, root: tuple[dict[str, V] | None, ...], length: int) -> PMap[V]:
        made = cls.__new__(cls)
        made._root = root
        made._len = length
        return made

    # --- reads (written out: each is called a few times per command) -------------------------------------

    def __getitem__(self, key: str) -> V:
        leaf = self._root[hash(key) & _MASK]
        if leaf is None:
            raise KeyError(key)
        return leaf[key]

    def get(self, key: str, default: Any = None) -> Any:
        leaf = self._root[hash(key) & _MASK]
        return default if leaf is None else leaf.get(key, default)

    def __contains__(self, key: object) -> bool:
        leaf = self._root[hash(key) & _MASK]
        return leaf is not None and key in leaf

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(leaf for leaf in self._root if leaf)

    def keys(self) -> Any:
        return list(self)

    def values(self) -> Any:
        return list(chain.from_iterable(leaf.values() for leaf in self._root if leaf))

    def items(self) -> Any:
        return list(chain.from_iterable(leaf.items() for leaf in self._root if leaf))

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Mapping) or len(other) != self._len:
            return False
        if isinstance(other, PMap) and other._root is self._root:
            return True
        return all(other.get(key, _MISSING) == value for key, value in self.items())

    # Like dict: equal by contents, so not hashable (a class that defines __eq__ gets __hash__ = None).

    def __repr__(self) -> str:
        return f"PMap({dict(self.items())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PMap, (dict(self.items()),))

    def copy(self) -> dict[str, V]:
        """A plain dict of the same items (what `MappingProxyType.copy()` gave callers before)."""
        return dict(self.items())


class PMapBuilder(Generic[V]):
    """A mutable draft of a PMap: copies a leaf the first time it changes it, then changes its copy in place.

    A draft that changes nothing costs nothing and freezes back into the same map."""

    __slots__ = ("_base", "_len", "_owned")

    def __init__(self, base: PMap[V]) -> None:
        self._base = base
        self._len = base._len
        self._owned: dict[int, dict[str, V]] = {}  # slot -> this draft's own copy of that leaf

    def _leaf(self, key: object) -> dict[str, V] | None:
        slot = hash(key) & _MASK
        leaf = self._owned.get(slot)
        return self._base._root[slot] if leaf is None else leaf

    def _leaf_for_write(self, key: str) -> dict[str, V]:
        slot = hash(key) & _MASK
        leaf = self._owned.get(slot)
        if leaf is None:
            shared = self._base._root[slot]
            leaf = self._owned[slot] = {} if shared is None else shared.copy()
        return leaf

    def __getitem__(self, key: str) -> V:
        leaf = self._leaf(key)
        if leaf is None:
            raise KeyError(key)
        return leaf[key]

    # get, in and set are written out (no helper calls): the fold calls them a few times per event.

    def get(self, key: str, default: Any = None) -> Any:
        slot = hash(key) & _MASK
        leaf = self._owned.get(slot, _MISSING)
        if leaf is _MISSING:
            leaf = self._base._root[slot]
        return default if leaf is None else leaf.get(key, default)

    def __contains__(self, key: object) -> bool:
        slot = hash(key) & _MASK
        leaf = self._owned.get(slot, _MISSING)
        if leaf is _MISSING:
            leaf = self._base._root[slot]
        return leaf is not None and key in leaf

    def __setitem__(self, key: str, value: V) -> None:
        slot = hash(key) & _MASK
        leaf = self._owned.get(slot)
        if leaf is None:
            shared = self._base._root[slot]
            leaf = self._owned[slot] = {} if shared is None else shared.copy()
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

    def _leaves(self) -> Iterator[dict[str, V]]:
        owned = self._owned
        if not owned:
            return (leaf for leaf in self._base._root if leaf)
        return (leaf for leaf in (owned.get(slot, shared) for slot, shared in enumerate(self._base._root)) if leaf)

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._leaves())

    def values(self) -> list[V]:
        return list(chain.from_iterable(leaf.values() for leaf in self._leaves()))

    def items(self) -> list[tuple[str, V]]:
        return list(chain.from_iterable(leaf.items() for leaf in self._leaves()))

    def freeze(self) -> PMap[V]:
        """The map as it stands. Its leaves now belong to the map: later writes to the builder copy them again."""
        if not self._owned:
            return self._base
        root = list(self._base._root)
        for slot, leaf in self._owned.items():
            root[slot] = leaf
        self._owned = {}
        frozen: PMap[V] = PMap._make(tuple(root), self._len)
        self._base = frozen
        return frozen
