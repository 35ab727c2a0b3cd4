from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.limits import RenderLimits, Size, WorkEstimate
from engine.operation import Operation, Prompt
from engine.ops.common import DiffusionParams, Guidance, SchedulerName, Side, Steps

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class Txt2ImgParams(DiffusionParams):
    prompt: str = Prompt("What to paint.")
    negative_prompt: str = Prompt("What to keep out of the picture.")
    width: Side = 512
    height: Side = 512
    steps: Steps = 25
    guidance: Guidance = 7.5
    scheduler: SchedulerName = "dpm++"


class Txt2Img(Operation):
    name = "txt2img"
    title = "Text to image"
    description = "Paint a new picture from a prompt."
    category = "generate"
    Params = Txt2ImgParams
    uses_seed = True
    needs_model = True
    pipeline_kind = "txt2img"

    @classmethod
    def estimate(
        cls, params: Txt2ImgParams, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate:
        size = (params.width, params.height)
        return WorkEstimate(params.width * params.height, params.steps, diffusion=True, size=size)

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: Txt2ImgParams) -> Image:
        pipe = ctx.pipeline("txt2img", params.scheduler)
        return ctx.call(
            pipe,
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or None,
            width=params.width,
            height=params.height,
            num_inference_steps=params.steps,
            guidance_scale=params.guidance,
        ).images[0]
