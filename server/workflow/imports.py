"""Import: a validated workflow's events become a new canvas (its images stored first)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from engine.operation import OperationRegistry
from server.blobstore import BlobStore
from server.core.events import CanvasCreated, Event, EventData, HistoryRedone, HistoryUndone, LayerRendered
from server.service import CanvasService, CommandResult, RecordedEvent
from server.workflow.format import Workflow, referenced_blobs


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
            data = CanvasCreated(data.name, {"kind": "workflow", **workflow.source})
        elif isinstance(data, HistoryUndone | HistoryRedone):
            data = type(data)(new_seq.get(data.first_seq, data.first_seq), new_seq.get(data.last_seq, data.last_seq),
                              data.count)  # fmt: skip
        recorded.append(RecordedEvent(data, event.actor, event.command_id, event.timestamp))
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
