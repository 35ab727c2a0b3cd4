"""The generic ControlNet operation: any ControlNet of the library, driven by a control image from a layer.

The control image is made elsewhere (a pose, a depth map, a scribble, a layer painted or uploaded) and used as it
is (`preprocess: "none"`), or made from a picture by a preprocessor of PREPROCESSORS (`"canny"`: the edges
controlnet_canny uses). A preprocessor is a function (picture, params) -> control image; adding one to the table
adds it to the parameter's choices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator

from engine.imaging import canny, fit_to_grid, restore_size
from engine.limits import RenderLimits, Size, WorkEstimate
from engine.operation import LayerInput, Operation, Prompt
from engine.ops.common import DiffusionParams, Guidance, Resize, SchedulerName, Steps
from engine.ops.controlnet_canny import Threshold, high_above_low
from engine.ops.img2img import estimate_from_source

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


def _as_is(image: Image, params: Any) -> Image:
    return image.convert("RGB")


def _canny(image: Image, params: Any) -> Image:
    return canny(image, params.low_threshold, params.high_threshold)


# name -> (picture, params) -> control image (RGB, the picture's size)
PREPROCESSORS: dict[str, Callable[[Image, Any], Image]] = {"none": _as_is, "canny": _canny}
Preprocess = Literal["none", "canny"]  # PREPROCESSORS' names (a test keeps them equal)


class ControlNetParams(DiffusionParams):
    controlnet: str = Field(
        min_length=1,
        max_length=512,
        description="A ControlNet of the server's library (controlnet/..., GET /api/models) of the model's family.",
    )
    control: str = LayerInput("The control image (a pose, depth or edge map), or the picture to preprocess.")
    preprocess: Preprocess = Field(
        "none", description="none: the layer is the control image; canny: its Canny edges are."
    )
    prompt: str = Prompt("What to paint.")
    negative_prompt: str = Prompt("What to keep out of the picture.")
    low_threshold: Threshold = 100
    high_threshold: Threshold = 200
    conditioning_scale: Annotated[
        float, Field(ge=0.0, le=2.0, description="How strongly the control image steers the picture.")
    ] = 1.0
    steps: Steps = 25
    guidance: Guidance = 7.5
    scheduler: SchedulerName = "dpm++"
    resize: Resize = "fit"

    _above_low = field_validator("high_threshold")(high_above_low)


class ControlNet(Operation):
    name = "controlnet"
    title = "Follow a control image (ControlNet)"
    description = "Paint a new picture steered by a control image from a layer (pose, depth, edges, ...)."
    category = "generate"
    Params = ControlNetParams
    uses_seed = True
    needs_model = True
    pipeline_kind = "controlnet"

    @classmethod
    def estimate(
        cls, params: ControlNetParams, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate | None:
        return estimate_from_source(input_sizes.get("control"), params.resize, params.steps, limits)

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: ControlNetParams) -> Image:
        control = ctx.working_image(inputs["control"], params.resize)
        prepared = PREPROCESSORS[params.preprocess](fit_to_grid(control), params)
        pipe = ctx.model.controlnet_pipeline(params.controlnet, params.scheduler)
        image = ctx.call(
            pipe,
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or None,
            image=prepared,
            width=prepared.width,
            height=prepared.height,
            controlnet_conditioning_scale=params.conditioning_scale,
            num_inference_steps=params.steps,
            guidance_scale=params.guidance,
        ).images[0]
        return restore_size(image, control.size)
