"""Undo, redo, restore and forks are decided by the decider (server/core), reading the past through a small
interface: the same events the service appends, without a store."""

from __future__ import annotations

import pytest

from engine.builtins import default_registry
from server.core.commands import AddLayer, Redo, RenameLayer, Restore, SetOpacity, Undo
from server.core.decide import CommandRejected, Decider, decide_fork
from server.core.events import CanvasCreated, Event, HistoryRedone, HistoryUndone, LayerDeleted, LayerOpacityChanged
from server.core.projection import empty_state, project


class Log:
    """A canvas's log in memory: what the decider reads of the past (`PastReader`)."""

    def __init__(self, canvas_id: str = "c1") -> None:
        self.events: list[Event] = [Event(canvas_id, 1, "e1", CanvasCreated("Sea"), "ada", None, 0.0)]
        self.decider = Decider(default_registry(), new_seed=lambda: 1)

    @property
    def state(self):
        return project(empty_state("c1"), self.events)

    def events_between(self, after: int, until: int) -> list[Event]:
        return [event for event in self.events if after < event.seq <= until]

    def state_at(self, version: int):
        return project(empty_state("c1"), self.events[:version])

    def run(self, command, actor: str = "ada", command_id: str | None = None) -> list:
        decided = self.decider.decide(self.state, command, actor, self)
        start = len(self.events)
        for offset, data in enumerate(decided, start=1):
            self.events.append(Event("c1", start + offset, f"e{start + offset}", data, actor,
                                     command_id or f"k{start + 1}", 0.0))  # fmt: skip
        return decided


def test_undo_and_redo_are_decided_in_the_core():
    log = Log()
    log.run(AddLayer(layer_id="a", operation="blank", params={"width": 64, "height": 64}))
    log.run(SetOpacity(layer_id="a", opacity=0.5))
    undo = log.run(Undo())
    assert isinstance(undo[0], HistoryUndone) and undo[1:] == [LayerOpacityChanged("a", 1.0)]
    redo = log.run(Redo())
    assert isinstance(redo[0], HistoryRedone) and redo[1:] == [LayerOpacityChanged("a", 0.5)]
    assert log.run(Undo())[1:] == [LayerOpacityChanged("a", 1.0)]
    assert log.run(Undo())[1:] == [LayerDeleted("a")]
    with pytest.raises(CommandRejected) as info:
        log.run(Undo())
    assert info.value.code == "nothing_to_undo"
    with pytest.raises(CommandRejected) as info:
        log.run(Undo(), actor="bob")
    assert info.value.code == "nothing_to_undo"


def test_an_undo_that_would_overwrite_someone_elses_change_is_refused():
    log = Log()
    log.run(AddLayer(layer_id="a", operation="blank"))
    log.run(RenameLayer(layer_id="a", name="Mine"), actor="ada")
    log.run(RenameLayer(layer_id="a", name="Theirs"), actor="bob")
    with pytest.raises(CommandRejected) as info:
        log.run(Undo(), actor="ada")
    assert info.value.code == "history_conflict"


def test_restore_is_decided_in_the_core():
    log = Log()
    log.run(AddLayer(layer_id="a", operation="blank"))
    log.run(RenameLayer(layer_id="a", name="Later"))
    log.run(Restore(version=2))
    assert log.state.layers["a"].name == log.state_at(2).layers["a"].name
    with pytest.raises(CommandRejected) as info:
        log.run(Restore(version=99))
    assert info.value.code == "bad_version"


def test_without_the_past_undo_and_restore_cannot_be_decided():
    log = Log()
    with pytest.raises(CommandRejected) as info:
        log.decider.decide(log.state, Undo(), "ada")
    assert info.value.code == "unknown_command"


def test_a_fork_starts_from_the_source_and_says_where_it_came_from():
    created = decide_fork("c1", CanvasCreated("Sea"), 3, 5)
    assert created == CanvasCreated("Sea (fork)", {"kind": "fork", "canvas_id": "c1", "version": 3})
    for version in (0, 6):
        with pytest.raises(CommandRejected) as info:
            decide_fork("c1", CanvasCreated("Sea"), version, 5)
        assert info.value.code == "bad_version"
