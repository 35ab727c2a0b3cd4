from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, ValidationInfo, field_validator

from engine.imaging import canny, fit_to_grid, restore_size
from engine.limits import RenderLimits, Size, WorkEstimate
from engine.operation import LayerInput, Operation, Prompt
from engine.ops.common import DiffusionParams, Guidance, Resize, SchedulerName, Steps
from engine.ops.img2img import estimate_from_source

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext

Threshold = Annotated[int, Field(ge=0, le=1020, description="Canny threshold on the Sobel gradient (L1).")]


def high_above_low(cls: type, value: int, info: ValidationInfo) -> int:
    """Canny's high threshold is at least its low one (shared by every operation with both)."""
    low = info.data.get("low_threshold")
    if low is not None and value < low:
        raise ValueError(f"must be at least low_threshold ({low})")
    return value


class ControlNetCannyParams(DiffusionParams):
    control: str = LayerInput("The picture whose edges the new one follows.")
    prompt: str = Prompt("What to paint.")
    negative_prompt: str = Prompt("What to keep out of the picture.")
    low_threshold: Threshold = 100
    high_threshold: Threshold = 200
    conditioning_scale: Annotated[
        float, Field(ge=0.0, le=2.0, description="How strongly the edges steer the picture.")
    ] = 1.0
    steps: Steps = 25
    guidance: Guidance = 7.5
    scheduler: SchedulerName = "dpm++"
    resize: Resize = "fit"

    _above_low = field_validator("high_threshold")(high_above_low)


class ControlNetCanny(Operation):
    name = "controlnet_canny"
    title = "Follow edges (ControlNet Canny)"
    description = "Paint a new picture that follows the Canny edges of a layer."
    category = "generate"
    Params = ControlNetCannyParams
    uses_seed = True
    needs_model = True
    pipeline_kind = "controlnet_canny"

    @classmethod
    def estimate(
        cls, params: ControlNetCannyParams, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate | None:
        return estimate_from_source(input_sizes.get("control"), params.resize, params.steps, limits)

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: ControlNetCannyParams) -> Image:
        control = ctx.working_image(inputs["control"], params.resize)
        edges = canny(fit_to_grid(control), params.low_threshold, params.high_threshold)
        pipe = ctx.pipeline("controlnet_canny", params.scheduler)
        image = pipe(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or None,
            image=edges,
            width=edges.width,
            height=edges.height,
            controlnet_conditioning_scale=params.conditioning_scale,
            num_inference_steps=params.steps,
            guidance_scale=params.guidance,
            **ctx.diffusers_kwargs(),
        ).images[0]
        return restore_size(image, control.size)
