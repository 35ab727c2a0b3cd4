"""Each event type's facts are declared once (server/core/event_registry.py), and the client reads the same."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest

from server.core import event_registry
from server.core.event_registry import CLIENT_FILE, EVENTS, UNDOABLE, WAKING_EVENTS, IncompleteEventType
from server.core.events import EVENT_TYPES, EventData
from server.core.values import value

ROOT = Path(__file__).resolve().parents[1]
NODE = shutil.which("node")


def test_the_committed_client_file_is_what_the_registry_writes():
    assert CLIENT_FILE.read_text() == event_registry.client_module(), (
        "client/js/events.js is stale: run .venv/bin/python -m server.core.event_registry"
    )
    assert event_registry.main(["--check"]) == 0


def test_every_event_type_has_its_facts():
    assert set(EVENTS) == set(EVENT_TYPES)
    for name, facts in EVENTS.items():
        assert facts.payload is EVENT_TYPES[name]
        assert facts.undoable == (facts.invert is not None), name
        assert facts.fold is not None or name in ("history.undone", "history.redone"), name
        assert facts.history_kind, name


def test_the_facts_the_writer_and_the_fold_read():
    assert {
        "layer.added", "layer.params_changed", "layer.render_requested", "layer.rendered", "layer.restored",
    } == WAKING_EVENTS  # fmt: skip
    assert {
        "canvas.renamed", "layer.added", "layer.params_changed", "layer.deleted", "layer.restored",
        "layer.visibility_changed", "layer.opacity_changed", "layer.renamed", "layer.moved", "version.named",
        "canvas.resized", "layer.transformed",
    } == UNDOABLE  # fmt: skip
    from server.core import projection

    assert projection.UNDOABLE == UNDOABLE


def test_an_event_type_without_its_fold_or_its_inversion_is_refused():
    @value
    class LayerTilted(EventData):
        type: ClassVar[str] = "layer.tilted"
        undoable: ClassVar[bool] = True
        layer_id: str

    with pytest.raises(IncompleteEventType, match="no fold handler"):
        event_registry._facts(LayerTilted)


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_client_folds_exactly_the_servers_event_types():
    script = (
        "import { KNOWN_EVENT_TYPES, UNDOABLE, HISTORY_DEPTH } from './client/js/state.js';"
        "console.log(JSON.stringify({known: [...KNOWN_EVENT_TYPES], undoable: [...UNDOABLE], depth: HISTORY_DEPTH}));"
    )
    out = subprocess.run(
        [NODE, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    client = json.loads(out.stdout)
    assert sorted(client["known"]) == sorted(EVENT_TYPES), "client/js/state.js folds other event types"
    assert sorted(client["undoable"]) == sorted(UNDOABLE)
    assert client["depth"] == event_registry.HISTORY_DEPTH
