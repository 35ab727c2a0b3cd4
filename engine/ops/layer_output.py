from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field

from engine.operation import LayerInput, Operation, Params

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class LayerOutputParams(Params):
    source: str = LayerInput("The layer whose operation made several images.")
    index: int = Field(1, ge=0, le=1000, description="Which of its images: 0 is the layer's own.")


class LayerOutput(Operation):
    """One of the several images an operation made (a segmenter's masks, say), as a layer of its own.

    The server adds these layers when a render returns several images, and feeds `source` with image `index`
    of that layer's render: so this operation only passes it on, and re-rendering the source updates it.
    """

    name = "layer_output"
    title = "Output"
    description = "One of the several images another layer's operation made."
    category = "internal"
    Params = LayerOutputParams

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: LayerOutputParams) -> Image:
        return inputs["source"].copy()
