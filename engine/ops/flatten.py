"""Flatten: the document under a frame as one picture, exactly as the editor shows it there.

This is how img2img, inpaint, ControlNet and instruct-pix2pix read "the composite under the frame": the editor
makes a flatten layer of the frame, then the operation over it, and both lie at the frame. The pictures are
listed with the placements they had when the layer was made, so a re-render or a replay flattens the same
document (engine/ops/outpaint.py's `Frame` and `PlacedLayer`); what no picture covers is transparent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.limits import RenderLimits, Size, WorkEstimate
from engine.operation import Operation, Params
from engine.ops.outpaint import MAX_LAYERS, Frame, PlacedLayer, frame_under

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class FlattenParams(Params):
    frame: Frame = Field(default_factory=Frame, description="The rectangle of the document (document pixels).")
    layers: list[PlacedLayer] = Field(
        default_factory=list, max_length=MAX_LAYERS, description="The pictures to flatten, bottom first."
    )


class Flatten(Operation):
    name = "flatten"
    title = "Flatten the frame"
    description = "The document under a frame as one picture (what an img2img or an inpaint of the frame reads)."
    category = "edit"
    Params = FlattenParams

    @classmethod
    def placed_at(cls, params: Mapping[str, Any]) -> tuple[float, float] | None:
        return (params["frame"]["x"], params["frame"]["y"])

    @classmethod
    def result_size(cls, params: Mapping[str, Any]) -> tuple[int, int] | None:
        return (params["frame"]["width"], params["frame"]["height"])

    @classmethod
    def estimate(
        cls, params: FlattenParams, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate:
        size = (params.frame.width, params.frame.height)
        return WorkEstimate(size[0] * size[1] * max(1, len(params.layers)), 1, size=size)

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: FlattenParams) -> Image:
        from PIL import Image as PILImage

        return PILImage.fromarray(frame_under(inputs, params, ctx), mode="RGBA")
