from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PIL import Image as PILImage

from engine.imaging import normalise_mode
from engine.operation import LayerInput, Operation, Params
from engine.ops.common import Dimension

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class ResizeParams(Params):
    source: str = LayerInput("The picture to scale.")
    width: Dimension = 512
    height: Dimension = 512


class Resize(Operation):
    name = "resize"
    title = "Resize"
    description = "Scale a layer to a new size (Lanczos); the aspect ratio is not kept unless you keep it."
    category = "edit"
    Params = ResizeParams

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: ResizeParams) -> Image:
        source = normalise_mode(inputs["source"])  # Lanczos needs a continuous mode: no palettes, no 1-bit
        return source.resize((params.width, params.height), PILImage.Resampling.LANCZOS)
