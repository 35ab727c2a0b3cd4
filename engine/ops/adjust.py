from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from PIL import ImageEnhance
from pydantic import Field

from engine.imaging import normalise_mode
from engine.operation import LayerInput, Operation, Params

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext

Factor = Annotated[float, Field(ge=0.0, le=4.0)]


class AdjustParams(Params):
    source: str = LayerInput("The picture to adjust.")
    brightness: Factor = Field(1.0, description="0 is black, 1 unchanged, 2 twice as bright.")
    contrast: Factor = Field(1.0, description="0 is flat grey, 1 unchanged.")
    saturation: Factor = Field(1.0, description="0 is greyscale, 1 unchanged.")


class Adjust(Operation):
    name = "adjust"
    title = "Adjust"
    description = "Brightness, contrast and saturation (Pillow's ImageEnhance, in that order); alpha is kept."
    category = "edit"
    Params = AdjustParams
    placed_on = "source"

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: AdjustParams) -> Image:
        source = normalise_mode(inputs["source"])
        # ImageEnhance would blend the alpha channel too (brightness 0 would make a layer transparent).
        alpha = source.getchannel("A") if source.mode == "RGBA" else None
        image = source.convert("RGB") if alpha is not None else source
        for enhancer, factor in (
            (ImageEnhance.Brightness, params.brightness),
            (ImageEnhance.Contrast, params.contrast),
            (ImageEnhance.Color, params.saturation),
        ):
            if factor != 1.0:  # 1.0 is exactly the source: skip the float round trip
                image = enhancer(image).enhance(factor)
        if alpha is not None:
            image.putalpha(alpha)
        return image
