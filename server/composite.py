"""PNGs for people: a layer's image or the whole canvas flattened, each carrying its workflow."""

from __future__ import annotations

import io

from engine.operation import OperationRegistry
from server.blobstore import BlobStore
from server.core.state import CanvasState

SHOWN = ("rendered", "stale")  # a stale layer still shows its last image


def composite_png(state: CanvasState, blobs: BlobStore, operations: OperationRegistry) -> bytes | None:
    """The visible image layers flattened bottom to top with their opacity; masks are not pictures and are
    left out. The canvas takes the size of the lowest visible layer. None when nothing is visible."""
    import numpy as np
    from PIL import Image

    from engine.blend import composite_over, to_image
    from engine.ops.composite import place
    from engine.png import encode_png

    layers = []
    for layer_id in state.order:
        layer = state.layers[layer_id]
        operation = operations.get(layer.operation)
        if not layer.visible or layer.output is None or layer.status not in SHOWN:
            continue
        if operation is not None and operation.category == "mask":
            continue
        layers.append((Image.open(io.BytesIO(blobs.get(layer.output.sha256))), layer.opacity))
    if not layers:
        return None
    size = layers[0][0].size
    result = np.zeros((size[1], size[0], 4), dtype=np.float64)
    for image, opacity in layers:
        result = composite_over(result, place(image, size, 0, 0), opacity, "normal")
    return encode_png(to_image(result))
