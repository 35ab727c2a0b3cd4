"""The cycle collector stays out of the server's way (server/heap.py): paused while an import allocates in bulk,
on again when the last import ends, and blind to what lives as long as the process."""

from __future__ import annotations

import gc
import threading

from server.heap import collection_paused, freeze_long_lived


def test_collection_is_paused_inside_and_resumes_only_after_the_last_of_overlapping_imports():
    assert gc.isenabled()
    first, second = collection_paused(), collection_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled(), "one import still runs"
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_collection_resumes_when_the_import_fails():
    try:
        with collection_paused():
            raise ValueError("a hostile file")
    except ValueError:
        pass
    assert gc.isenabled()


def test_pauses_from_several_threads_balance():
    barrier = threading.Barrier(8)

    def work() -> None:
        with collection_paused():
            barrier.wait()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.isenabled()


def test_frozen_objects_are_not_walked_by_a_full_collection():
    try:
        before = gc.get_freeze_count()
        kept = [[index] for index in range(10_000)]
        freeze_long_lived()
        assert gc.get_freeze_count() >= before + len(kept)
        walked = {id(item) for item in gc.get_objects()}
        assert not any(id(item) in walked for item in kept), "a frozen list is still in a generation"
    finally:
        gc.unfreeze()
