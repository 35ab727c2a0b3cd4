"""The stack order's persistent sequence: versions share one buffer and never see each other's appends."""

from __future__ import annotations

from server.core.pseq import EMPTY, PSeq


def test_two_versions_appended_to_the_same_one_each_see_only_their_own_items():
    base = PSeq(["a", "b"])
    left = base.appended(["c"])
    right = base.appended(["d", "e"])  # a branch: base is no longer at the end of its list
    assert (base, left, right) == (("a", "b"), ("a", "b", "c"), ("a", "b", "d", "e"))
    assert "c" not in base and "c" not in right and list(reversed(left)) == ["c", "b", "a"]
    assert left.index("c") == 2 and left[-1] == "c" and left[1:] == ("b", "c")


def test_appending_to_the_empty_sequence_leaves_it_empty_and_unshared():
    first, second = EMPTY.appended(["x"]), EMPTY.appended(["y"])
    assert (EMPTY, first, second) == ((), ("x",), ("y",))
    assert EMPTY._items == []
