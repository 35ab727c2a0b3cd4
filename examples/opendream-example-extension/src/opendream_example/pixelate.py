from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PIL import Image as PILImage
from pydantic import Field

from engine.operation import LayerInput, Operation, Params

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class PixelateParams(Params):
    source: str = LayerInput("The picture to pixelate.")
    block: int = Field(8, ge=1, le=256, description="Side of one big pixel, in source pixels.")


class Pixelate(Operation):
    """Big square pixels: shrink with a box filter (each block's mean colour), grow back nearest-neighbour."""

    name = "pixelate"
    title = "Pixelate"
    description = "Big square pixels of each block's average colour."
    category = "edit"
    Params = PixelateParams

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: PixelateParams) -> Image:
        source = inputs["source"]
        small = (max(1, source.width // params.block), max(1, source.height // params.block))
        return source.resize(small, PILImage.Resampling.BOX).resize(source.size, PILImage.Resampling.NEAREST)
