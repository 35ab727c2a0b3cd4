from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import numpy as np
from PIL import Image as PILImage
from pydantic import Field

from engine.imaging import mask_from_layer
from engine.operation import BlobInput, LayerInput, Operation, Params

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext

Coordinate = Annotated[float, Field(ge=-100_000, le=100_000)]  # bounded, so never inf or nan


class Stroke(Params):
    points: list[tuple[Coordinate, Coordinate]] = Field(
        min_length=1, max_length=10_000, description="[x, y] pixel positions on the bound layer, in order."
    )
    radius: float = Field(8.0, gt=0.0, le=512.0, description="Half the brush width, in pixels.")
    erase: bool = Field(False, description="Erase (unselect) instead of paint.")


class MaskParams(Params):
    layer: str = LayerInput("The layer the mask was painted on; the mask has its size.")
    strokes: list[Stroke] = Field(default_factory=list, max_length=1000, description="Brush strokes, in order.")
    blob: str | None = BlobInput(
        "A painted mask image (white or opaque = selected), applied before the strokes.", default=None
    )


def paint_strokes(mask: Image, strokes: list[Stroke]) -> Image:
    """Rasterise brush strokes onto an "L" mask: 255 where painted, 0 where erased; round caps and joins.

    A pixel is painted when its centre lies within `radius` of the stroke's polyline, pixel (i, j) having its
    centre at (i, j). That is a capsule per segment, so caps and joins come out round, and the rule is exact
    and symmetric; ImageDraw's wide lines, ellipses and polygons with fractional coordinates all sit up to
    half a pixel off-centre. Only each segment's bounding box is computed, so the cost follows the brush area.
    """
    pixels = np.array(mask, dtype=np.uint8)
    height, width = pixels.shape
    for stroke in strokes:
        fill = 0 if stroke.erase else 255
        radius = stroke.radius
        reach = radius * radius + 1e-9  # pixels exactly `radius` away count, whatever the float rounding
        points = stroke.points
        for (x0, y0), (x1, y1) in itertools.pairwise(points) if len(points) > 1 else [(points[0], points[0])]:
            left, right = max(0, math.ceil(min(x0, x1) - radius)), min(width - 1, math.floor(max(x0, x1) + radius))
            top, bottom = max(0, math.ceil(min(y0, y1) - radius)), min(height - 1, math.floor(max(y0, y1) + radius))
            if left > right or top > bottom:
                continue
            ys, xs = np.ogrid[top : bottom + 1, left : right + 1]
            dx, dy = x1 - x0, y1 - y0
            length2 = dx * dx + dy * dy
            # the closest point of the segment to each pixel centre, as a fraction t along it
            t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0.0, 1.0) if length2 else 0.0
            distance2 = (x0 + t * dx - xs) ** 2 + (y0 + t * dy - ys) ** 2
            pixels[top : bottom + 1, left : right + 1][distance2 <= reach] = fill
    return PILImage.fromarray(pixels, mode="L")


class Mask(Operation):
    name = "mask"
    title = "Mask"
    description = "A mask painted over a layer with brush strokes and/or an uploaded mask image; white = selected."
    category = "mask"
    Params = MaskParams
    placed_on = "layer"

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: MaskParams) -> Image:
        size = inputs["layer"].size
        if params.blob is not None:
            mask = mask_from_layer(ctx.read_image(params.blob), size)
        else:
            mask = PILImage.new("L", size, 0)
        return paint_strokes(mask, list(params.strokes))
