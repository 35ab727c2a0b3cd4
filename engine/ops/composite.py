from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from engine.blend import BlendMode, composite_over, to_float, to_image
from engine.operation import LayerInput, Operation, Params
from engine.ops.common import Dimension, Offset

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class CompositeItem(Params):
    layer: str = LayerInput("A layer to stack.")
    opacity: float = Field(1.0, ge=0.0, le=1.0, description="0 is invisible, 1 fully opaque.")
    visible: bool = True
    blend_mode: BlendMode = Field("normal", description="How its colours mix with what lies below.")
    x: Offset = 0
    y: Offset = 0


class CompositeParams(Params):
    layers: list[CompositeItem] = Field(min_length=1, max_length=64, description="Bottom first.")
    width: Dimension | None = Field(None, description="Canvas width; default: the first layer's.")
    height: Dimension | None = Field(None, description="Canvas height; default: the first layer's.")


def place(image: Image, size: tuple[int, int], x: int, y: int) -> np.ndarray:
    """`image` as straight RGBA floats on a transparent canvas of `size`, its top-left corner at (x, y)."""
    width, height = size
    canvas = np.zeros((height, width, 4), dtype=np.float64)
    pixels = to_float(image)
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + image.width, width), min(y + image.height, height)
    if left < right and top < bottom:
        canvas[top:bottom, left:right] = pixels[top - y : bottom - y, left - x : right - x]
    return canvas


class Composite(Operation):
    name = "composite"
    title = "Composite"
    description = "Stack layers bottom first with opacity and blend modes (normal, multiply, screen, overlay, ...)."
    category = "edit"
    Params = CompositeParams

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: CompositeParams) -> Image:
        first = inputs["layers.0.layer"]
        size = (params.width or first.width, params.height or first.height)
        result = np.zeros((size[1], size[0], 4), dtype=np.float64)
        for index, item in enumerate(params.layers):
            if not item.visible or item.opacity == 0.0:
                continue
            ctx.check_cancelled()
            source = place(inputs[f"layers.{index}.layer"], size, item.x, item.y)
            result = composite_over(result, source, item.opacity, item.blend_mode)
        return to_image(result)
