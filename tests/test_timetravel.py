"""Time travel: forks from any version, and restoring a past version by appending events."""

from __future__ import annotations

import pytest

from server.core.commands import Restore, Undo
from server.core.decide import CommandRejected
from tests.test_history import content
from tests.test_service import new_canvas, scripted_history

pytestmark = pytest.mark.anyio


def without_identity(data: dict) -> dict:
    data = dict(data)
    for key in ("canvas_id", "name", "origin"):
        data.pop(key)
    return data


async def test_a_fork_at_every_version_starts_from_exactly_that_state(service, store):
    canvas_id = await new_canvas(service)
    seen = await scripted_history(service, canvas_id)
    for version in [*sorted(seen)[::3], max(seen)]:
        result = await service.fork(canvas_id, version, "bob")
        fork = await service.state(result.canvas_id)
        assert fork.version == version
        assert fork.origin == {"kind": "fork", "canvas_id": canvas_id, "version": version}
        # Named "<name> (fork)" at creation; a rename within the copied events renames it as it did the original.
        assert fork.name in ("Test (fork)", (await service.state(canvas_id, version)).name)
        assert without_identity(content(fork)) == without_identity(content(await service.state(canvas_id, version)))
        # Its log is its own: the same facts, new event ids, and past versions project as in the original.
        copied = store.read(result.canvas_id)
        original = store.read(canvas_id, until=version)
        assert [e.data for e in copied[1:]] == [e.data for e in original[1:]]
        assert {e.event_id for e in copied}.isdisjoint(e.event_id for e in original)
        middle = version // 2 or 1
        assert without_identity(content(await service.state(result.canvas_id, middle))) == without_identity(
            content(await service.state(canvas_id, middle))
        )


async def test_a_fork_can_be_edited_without_touching_the_original(service):
    canvas_id = await new_canvas(service)
    seen = await scripted_history(service, canvas_id)
    fork_id = (await service.fork(canvas_id, 5, "bob")).canvas_id
    before = content(await service.state(canvas_id))
    await service.execute(fork_id, Restore(version=2), "bob")
    assert content(await service.state(canvas_id)) == before
    assert max(seen) == (await service.state(canvas_id)).version


async def test_forking_a_version_that_does_not_exist_is_refused(service):
    canvas_id = await new_canvas(service)
    with pytest.raises(CommandRejected) as info:
        await service.fork(canvas_id, 2, "bob")
    assert info.value.code == "bad_version"


async def test_restoring_any_version_brings_it_back_and_can_be_undone(service):
    canvas_id = await new_canvas(service)
    seen = await scripted_history(service, canvas_id)
    for version in sorted(seen)[::2]:
        head_before = content(await service.state(canvas_id))
        result = await service.execute(canvas_id, Restore(version=version), "carol")
        assert result.version > version or not result.events
        restored = content(await service.state(canvas_id))
        assert without_identity(restored) | {"name": 0} == without_identity(seen_content(seen, version)) | {"name": 0}
        assert restored["name"] == seen[version]["name"]
        if result.events:
            await service.execute(canvas_id, Undo(), "carol")
            assert content(await service.state(canvas_id)) == head_before


def seen_content(seen: dict[int, dict], version: int) -> dict:
    data = {key: value for key, value in seen[version].items() if key not in ("version", "history")}
    data["layers"] = [
        {k: v for k, v in layer.items() if k not in ("updated_seq", "revision")} for layer in data["layers"]
    ]
    return data
