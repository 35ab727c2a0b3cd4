from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image as PILImage
from pydantic import Field

from engine.imaging import connected_region
from engine.operation import InvalidParams, LayerInput, Operation, Params

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class MagicWandParams(Params):
    source: str = LayerInput("The picture to select from.")
    x: int = Field(ge=0, le=8192, description="The clicked pixel's column.")
    y: int = Field(ge=0, le=8192, description="The clicked pixel's row.")
    tolerance: int = Field(32, ge=0, le=255, description="Largest per-channel RGBA difference from the clicked colour.")
    contiguous: bool = Field(True, description="Only pixels connected to the clicked one (else every similar pixel).")


def similar_to(image: Image, x: int, y: int, tolerance: int) -> np.ndarray:
    """Pixels whose every RGBA channel is within `tolerance` of pixel (x, y)'s."""
    pixels = np.asarray(image.convert("RGBA"), dtype=np.int16)
    return (np.abs(pixels - pixels[y, x]) <= tolerance).all(axis=-1)


class MagicWand(Operation):
    name = "magic_wand"
    title = "Magic wand"
    description = "Select the pixels of a colour similar to the clicked one: a mask, white = selected."
    category = "mask"
    Params = MagicWandParams
    placed_on = "source"

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: MagicWandParams) -> Image:
        source = inputs["source"]
        if params.x >= source.width:
            raise InvalidParams(f"magic_wand: x = {params.x} is outside the source ({source.width} wide)", "x")
        if params.y >= source.height:
            raise InvalidParams(f"magic_wand: y = {params.y} is outside the source ({source.height} high)", "y")
        selected = similar_to(source, params.x, params.y, params.tolerance)
        if params.contiguous:
            selected = connected_region(selected, params.x, params.y)
        return PILImage.fromarray(np.where(selected, 255, 0).astype(np.uint8), mode="L")
