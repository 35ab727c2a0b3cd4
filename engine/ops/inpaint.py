from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from PIL import Image as PILImage

from engine.imaging import fit_to_grid, mask_from_layer, restore_size
from engine.limits import RenderLimits, Size, WorkEstimate
from engine.operation import LayerInput, MaskInput, Operation, Prompt
from engine.ops.common import DiffusionParams, Guidance, Resize, SchedulerName, Steps, Strength
from engine.ops.img2img import denoising_steps, effective_steps, estimate_from_source

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class InpaintParams(DiffusionParams):
    source: str = LayerInput("The picture to repaint part of.")
    mask: str = MaskInput("Where to repaint: white (or opaque) areas are repainted.")
    prompt: str = Prompt("What to paint in the masked area.")
    negative_prompt: str = Prompt("What to keep out of the picture.")
    strength: Strength = 1.0
    steps: Steps = 30
    guidance: Guidance = 7.5
    scheduler: SchedulerName = "dpm++"
    resize: Resize = "fit"


class RepaintSettings(Protocol):
    """What the inpaint pipeline is called with besides the picture and the mask (inpaint's and outpaint's)."""

    @property
    def prompt(self) -> str: ...
    @property
    def negative_prompt(self) -> str: ...
    @property
    def strength(self) -> float: ...
    @property
    def steps(self) -> int: ...
    @property
    def guidance(self) -> float: ...
    @property
    def scheduler(self) -> str: ...


def repaint(ctx: RunContext, image: Image, mask: Image, settings: RepaintSettings) -> Image:
    """The model's inpaint pipeline over `image` (RGB, sides on the 8-pixel grid) where `mask` is white, at the
    image's size; every pixel comes back through the VAE, so callers put back what was to be kept."""
    pipe = ctx.pipeline("inpaint", settings.scheduler)
    painted: Image = ctx.call(
        pipe,
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt or None,
        image=image,
        mask_image=mask,
        width=image.width,
        height=image.height,
        strength=settings.strength,
        num_inference_steps=effective_steps(settings.steps, settings.strength),
        guidance_scale=settings.guidance,
    ).images[0]
    return painted


class Inpaint(Operation):
    name = "inpaint"
    title = "Inpaint"
    description = "Repaint the masked part of a layer; pixels outside the mask are kept exactly."
    category = "generate"
    Params = InpaintParams
    placed_on = "source"
    uses_seed = True
    needs_model = True
    pipeline_kind = "inpaint"

    @classmethod
    def estimate(
        cls, params: InpaintParams, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate | None:
        steps = denoising_steps(params.steps, params.strength)
        return estimate_from_source(input_sizes.get("source"), params.resize, steps, limits)

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: InpaintParams) -> Image:
        source = ctx.working_image(inputs["source"], params.resize).convert("RGB")
        image = fit_to_grid(source)
        painted = repaint(ctx, image, mask_from_layer(inputs["mask"], image.size), params)
        # The VAE round trip shifts every pixel a little; only the masked area is meant to change.
        painted = restore_size(painted, source.size)
        return PILImage.composite(painted, source, mask_from_layer(inputs["mask"], source.size))
