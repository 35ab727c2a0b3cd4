from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from engine.imaging import fit_to_grid, restore_size
from engine.limits import RenderLimits, Size, WorkEstimate
from engine.operation import LayerInput, Operation, Prompt
from engine.ops.common import DiffusionParams, Guidance, Resize, SchedulerName, Steps
from engine.ops.img2img import estimate_from_source

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class InstructPix2PixParams(DiffusionParams):
    source: str = LayerInput("The picture to edit.")
    instruction: str = Prompt("The edit, as an instruction: 'make it winter'.")
    negative_prompt: str = Prompt("What to keep out of the picture.")
    steps: Steps = 20
    guidance: Guidance = 7.5
    image_guidance: Annotated[
        float, Field(ge=0.0, le=30.0, description="How closely to stay with the source picture.")
    ] = 1.5
    scheduler: SchedulerName = "euler_a"
    resize: Resize = "fit"


class InstructPix2Pix(Operation):
    name = "instruct_pix2pix"
    title = "Edit by instruction"
    description = "Edit a layer by a written instruction (InstructPix2Pix)."
    category = "generate"
    Params = InstructPix2PixParams
    placed_on = "source"
    uses_seed = True
    needs_model = True
    pipeline_kind = "instruct_pix2pix"

    @classmethod
    def estimate(
        cls, params: InstructPix2PixParams, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate | None:
        return estimate_from_source(input_sizes.get("source"), params.resize, params.steps, limits)

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: InstructPix2PixParams) -> Image:
        source = ctx.working_image(inputs["source"], params.resize)
        pipe = ctx.pipeline("instruct_pix2pix", params.scheduler)
        image = pipe(
            prompt=params.instruction,
            negative_prompt=params.negative_prompt or None,
            image=fit_to_grid(source),
            num_inference_steps=params.steps,
            guidance_scale=params.guidance,
            image_guidance_scale=params.image_guidance,
            **ctx.diffusers_kwargs(),
        ).images[0]
        return restore_size(image, source.size)
