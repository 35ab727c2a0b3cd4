"""PNGs for people: a layer's image or the whole canvas flattened, each carrying its workflow."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from engine.operation import OperationRegistry
from server.blobstore import BlobStore
from server.core.state import CanvasState

if TYPE_CHECKING:
    from engine.document import Placed

SHOWN = ("rendered", "stale")  # a stale layer still shows its last image


def composite_png(state: CanvasState, blobs: BlobStore, operations: OperationRegistry) -> bytes | None:
    """The document as the editor shows it: its frame and background, the visible image layers placed and
    flattened bottom to top with their opacity (engine/document.py); masks are not pictures and are left out.
    None when there is nothing to show."""
    from engine.blend import to_image
    from engine.document import flatten
    from engine.png import encode_png

    placed = placed_layers(state, blobs, operations)
    if state.width and state.height:
        size = (state.width, state.height)
    elif placed:  # a past version from before its first render, shown with a later picture: that one's size
        size = placed[0].image.size
    else:
        return None
    return encode_png(to_image(flatten(size, placed, state.background)))


def placed_layers(state: CanvasState, blobs: BlobStore, operations: OperationRegistry) -> list[Placed]:
    """The visible pictures of the canvas, bottom first, each with its opacity and placement."""
    from PIL import Image

    from engine.document import Placed

    placed = []
    for layer_id in state.order:
        layer = state.layers[layer_id]
        operation = operations.get(layer.operation)
        if not layer.visible or layer.output is None or layer.status not in SHOWN:
            continue
        if operation is not None and operation.category == "mask":
            continue
        image = Image.open(io.BytesIO(blobs.get(layer.output.sha256)))
        where = layer.placement
        placed.append(Placed(image, layer.opacity, where.x, where.y, where.scale, where.rotation, where.flip_x,
                             where.flip_y))  # fmt: skip
    return placed
