from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.imaging import fit_to_grid, restore_size
from engine.operation import LayerInput, Operation, Params, Prompt
from engine.ops.common import Guidance, SchedulerName, Steps, Strength

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


def effective_steps(steps: int, strength: float) -> int:
    # diffusers runs int(steps * strength) steps and refuses zero; keep at least one.
    return max(steps, math.ceil(1 / strength)) if int(steps * strength) < 1 else steps


class Img2ImgParams(Params):
    source: str = LayerInput("The picture to start from.")
    prompt: str = Prompt("What to paint.")
    negative_prompt: str = Prompt("What to keep out of the picture.")
    strength: Strength = 0.6
    steps: Steps = 30
    guidance: Guidance = 7.5
    scheduler: SchedulerName = "dpm++"


class Img2Img(Operation):
    name = "img2img"
    title = "Image to image"
    description = "Repaint a layer guided by a prompt; strength sets how far it may move from the source."
    category = "generate"
    Params = Img2ImgParams
    uses_seed = True
    needs_model = True

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: Img2ImgParams) -> Image:
        source = inputs["source"]
        pipe = ctx.pipeline("img2img", params.scheduler)
        image = pipe(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or None,
            image=fit_to_grid(source),
            strength=params.strength,
            num_inference_steps=effective_steps(params.steps, params.strength),
            guidance_scale=params.guidance,
            **ctx.diffusers_kwargs(),
        ).images[0]
        return restore_size(image, source.size)
