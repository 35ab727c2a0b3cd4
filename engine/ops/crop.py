from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.imaging import normalise_mode
from engine.operation import InvalidParams, LayerInput, Operation, Params
from engine.ops.common import Dimension

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class CropParams(Params):
    source: str = LayerInput("The picture to cut from.")
    x: int = Field(0, ge=0, le=8192, description="Left edge of the region, in pixels.")
    y: int = Field(0, ge=0, le=8192, description="Top edge of the region, in pixels.")
    width: Dimension = 256
    height: Dimension = 256


def check_region(params: CropParams, size: tuple[int, int]) -> None:
    """The region must lie inside the source: its size is only known at render time."""
    width, height = size
    if params.x >= width:
        raise InvalidParams(f"crop: x = {params.x} is outside the source, which is {width} pixels wide", "x")
    if params.y >= height:
        raise InvalidParams(f"crop: y = {params.y} is outside the source, which is {height} pixels high", "y")
    if params.x + params.width > width:
        raise InvalidParams(
            f"crop: x + width = {params.x + params.width} is past the source's right edge ({width})", "width"
        )
    if params.y + params.height > height:
        raise InvalidParams(
            f"crop: y + height = {params.y + params.height} is past the source's bottom edge ({height})", "height"
        )


class Crop(Operation):
    name = "crop"
    title = "Crop"
    description = "Cut a rectangle out of a layer."
    category = "edit"
    Params = CropParams
    placed_on = "source"

    @classmethod
    def offset_in_input(cls, params: Mapping[str, Any]) -> tuple[float, float]:
        return (params["x"], params["y"])  # a crop stays where it was cut from

    @classmethod
    def result_size(cls, params: Mapping[str, Any]) -> tuple[int, int] | None:
        return (params["width"], params["height"])

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: CropParams) -> Image:
        source = normalise_mode(inputs["source"])
        check_region(params, source.size)
        return source.crop((params.x, params.y, params.x + params.width, params.y + params.height))
