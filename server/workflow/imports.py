"""Import: a validated workflow's events become a new canvas (its images stored first)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from engine.operation import OperationRegistry
from server.blobstore import BlobStore
from server.core.events import (
    CanvasCreated,
    CanvasRenamed,
    Event,
    EventData,
    HistoryRedone,
    HistoryUndone,
    LayerRendered,
)
from server.service import CanvasService, CommandResult, RecordedEvent
from server.workflow.format import Workflow, referenced_blobs

MAX_NAME = 200  # a canvas name's bound (server/core/commands.py LayerName, which rename_canvas takes)
IMPORTED = re.compile(r"^(?P<base>.*) \(imported(?: (?P<count>\d+))?\)$", re.DOTALL)


def imported_name(name: str) -> str:
    """The name of a canvas imported from one called `name`: "Name (imported)", so the two are told apart in
    the canvas list; a copy of a copy counts on ("Name (imported 2)") rather than piling suffixes up."""
    found = IMPORTED.match(name)
    base, count = (found["base"], int(found["count"] or 1) + 1) if found else (name, 1)
    base = base[: MAX_NAME - 20].rstrip()  # room for the longest suffix
    if not base:
        return "Imported canvas"
    return base + (" (imported)" if count == 1 else f" (imported {count})")


def events_to_import(workflow: Workflow, output_available: Callable[[str], bool]) -> list[RecordedEvent]:
    """The workflow's events for a new canvas. Renders whose images are not at hand are left out (the engine
    renders those layers again); undo markers are renumbered to match."""
    kept: list[Event] = []
    new_seq: dict[int, int] = {}
    for event in workflow.events:
        data = event.data
        if isinstance(data, LayerRendered) and not all(map(output_available, (data.output, *data.extra_outputs))):
            continue
        new_seq[event.seq] = len(kept) + 1
        kept.append(event)
    recorded = []
    for event in kept:
        data: EventData = event.data
        if isinstance(data, CanvasCreated):
            data = CanvasCreated(imported_name(data.name), {"kind": "workflow", **workflow.source})
        elif isinstance(data, CanvasRenamed):
            data = CanvasRenamed(imported_name(data.name))
        elif isinstance(data, HistoryUndone | HistoryRedone):
            data = type(data)(new_seq.get(data.first_seq, data.first_seq), new_seq.get(data.last_seq, data.last_seq),
                              data.count)  # fmt: skip
        recorded.append(RecordedEvent(data, event.actor, event.command_id, event.timestamp, event.gesture))
    return recorded


async def import_workflow(
    workflow: Workflow,
    service: CanvasService,
    blobs: BlobStore,
    operations: OperationRegistry,
    trusted: bool = False,
) -> CommandResult:
    """Store the images the log uses (only now: everything was validated first), then create the canvas.

    Over HTTP (`trusted` False) the new canvas names only images the file carries: a file naming an image of
    the server by its hash would otherwise be a way to read another canvas's images. The operator's CLI may
    also use the server's images (a lean export re-imported on the same machine)."""
    for sha in set(workflow.blobs) & referenced_blobs(workflow, operations):
        await asyncio.to_thread(blobs.put, workflow.blobs[sha])
    available = blobs.exists if trusted else workflow.blobs.__contains__
    events = await asyncio.to_thread(events_to_import, workflow, available)  # 100k events: not on the loop
    return await service.import_log(events)
