from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.imaging import fit_to_grid, grid_size, restore_size
from engine.limits import RenderLimits, Size, WorkEstimate, working_size
from engine.operation import LayerInput, Operation, Prompt
from engine.ops.common import DiffusionParams, Guidance, Resize, SchedulerName, Steps, Strength

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


def effective_steps(steps: int, strength: float) -> int:
    # diffusers runs int(steps * strength) steps and refuses zero; keep at least one.
    return max(steps, math.ceil(1 / strength)) if int(steps * strength) < 1 else steps


def denoising_steps(steps: int, strength: float) -> int:
    """The steps diffusers actually runs for a partial repaint (int(steps x strength), at least one)."""
    return int(effective_steps(steps, strength) * strength)


def estimate_from_source(
    source: Size | None, rule: str, steps: int, limits: RenderLimits | None
) -> WorkEstimate | None:
    """The cost of a diffusion render over a source image brought to the working size by `rule`."""
    if source is None:
        return None
    size = grid_size(working_size(source, rule, limits))  # type: ignore[arg-type]
    return WorkEstimate(size[0] * size[1], steps, diffusion=True, size=size)


class Img2ImgParams(DiffusionParams):
    source: str = LayerInput("The picture to start from.")
    prompt: str = Prompt("What to paint.")
    negative_prompt: str = Prompt("What to keep out of the picture.")
    strength: Strength = 0.6
    steps: Steps = 30
    guidance: Guidance = 7.5
    scheduler: SchedulerName = "dpm++"
    resize: Resize = "fit"


class Img2Img(Operation):
    name = "img2img"
    title = "Image to image"
    description = "Repaint a layer guided by a prompt; strength sets how far it may move from the source."
    category = "generate"
    Params = Img2ImgParams
    placed_on = "source"
    uses_seed = True
    needs_model = True
    pipeline_kind = "img2img"

    @classmethod
    def estimate(
        cls, params: Img2ImgParams, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate | None:
        steps = denoising_steps(params.steps, params.strength)
        return estimate_from_source(input_sizes.get("source"), params.resize, steps, limits)

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: Img2ImgParams) -> Image:
        source = ctx.working_image(inputs["source"], params.resize)
        pipe = ctx.pipeline("img2img", params.scheduler)
        image = fit_to_grid(source)
        image = ctx.call(
            pipe,
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or None,
            image=image,
            # SD 3 and FLUX would otherwise paint at their default size; the UNet pipelines take no width/height
            width=image.width,
            height=image.height,
            strength=params.strength,
            num_inference_steps=effective_steps(params.steps, params.strength),
            guidance_scale=params.guidance,
        ).images[0]
        return restore_size(image, source.size)
