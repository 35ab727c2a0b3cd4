from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PIL import ImageOps
from pydantic import Field

from engine.operation import LayerInput, Operation, Params

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class PosterizeParams(Params):
    source: str = LayerInput("The picture to posterize.")
    bits: int = Field(3, ge=1, le=8, description="Bits kept per colour channel: 1 is two levels, 8 unchanged.")


class Posterize(Operation):
    """Reduce every colour channel to 2**bits levels, for a flat, poster-like look.

    Deterministic and model-free: the same source and bits always give the same pixels.
    """

    name = "posterize"
    title = "Posterize"
    description = "Fewer levels per colour channel, for a flat poster look."
    category = "edit"
    Params = PosterizeParams

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: PosterizeParams) -> Image:
        source = inputs["source"]
        alpha = source.getchannel("A") if source.mode == "RGBA" else None
        image = ImageOps.posterize(source.convert("RGB"), params.bits)
        if alpha is not None:
            image.putalpha(alpha)  # posterize the colours, never the transparency
        return image
