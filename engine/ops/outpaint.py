"""Outpaint: fill what is empty under a generation frame, keeping what is there.

The pictures under the frame are flattened as the document shows them (engine/document.py), the part they do
not fully cover is what the model paints, and the seam reaches `feather` pixels into the pictures so the new
part blends in. Every fully covered pixel beyond the seam is put back exactly: an outpaint never changes what
was there. The result is frame-sized and is placed at the frame (`placed_at`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import numpy as np
from pydantic import Field

from engine.blend import to_image
from engine.document import Placed, flatten_region
from engine.limits import RenderLimits, Size, WorkEstimate
from engine.operation import LayerInput, Operation, Params, Prompt
from engine.ops.common import DiffusionParams, Guidance, SchedulerName, Side, Steps, Strength
from engine.ops.img2img import denoising_steps
from engine.ops.inpaint import repaint

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext

# Document coordinates, bounded as TransformLayer's (server/core/commands.py).
Coordinate = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]
FramePosition = Annotated[int, Field(ge=-100_000, le=100_000, description="Document pixels.")]
MAX_FEATHER = 256
MAX_LAYERS = 256


class Frame(Params):
    """The rectangle of the document to generate in; its sides are on the models' 8-pixel grid."""

    x: FramePosition = 0
    y: FramePosition = 0
    width: Side = 512
    height: Side = 512


class PlacedLayer(Params):
    """A picture under the frame, with the placement it had when the outpaint was made (so a re-render or a
    replay flattens the same document, and moving the layer later changes nothing here)."""

    layer: str = LayerInput("A layer under the frame.")
    x: Coordinate = 0.0
    y: Coordinate = 0.0
    scale: float = Field(1.0, ge=0.01, le=64, allow_inf_nan=False)
    rotation: float = Field(0.0, ge=-360, le=360, allow_inf_nan=False)
    flip_x: bool = False
    flip_y: bool = False
    opacity: float = Field(1.0, ge=0.0, le=1.0)


class OutpaintParams(DiffusionParams):
    frame: Frame = Field(default_factory=Frame, description="Where on the document to paint (document pixels).")
    # as many as a canvas shows at once: the editor sends every visible picture, wherever it lies
    layers: list[PlacedLayer] = Field(
        default_factory=list, max_length=MAX_LAYERS, description="The pictures under the frame, bottom first."
    )
    prompt: str = Prompt("What to paint in the empty part.")
    negative_prompt: str = Prompt("What to keep out of the picture.")
    strength: Strength = 1.0
    steps: Steps = 30
    guidance: Guidance = 7.5
    scheduler: SchedulerName = "dpm++"
    feather: int = Field(16, ge=0, le=MAX_FEATHER, description="How far the seam reaches into the pictures, in pixels.")


class Framed(Protocol):
    """Params that name a frame and the pictures under it (outpaint's, flatten's)."""

    frame: Frame
    layers: list[PlacedLayer]


def frame_under(inputs: Mapping[str, Image], params: Framed, ctx: RunContext) -> np.ndarray:
    """The document inside the frame as 8-bit RGBA, transparent where no picture lies."""
    placed = []
    for index, item in enumerate(params.layers):
        ctx.check_cancelled()
        placed.append(Placed(inputs[f"layers.{index}.layer"], item.opacity, item.x, item.y, item.scale,
                             item.rotation, item.flip_x, item.flip_y))  # fmt: skip
    frame = params.frame
    return np.asarray(to_image(flatten_region((frame.x, frame.y), (frame.width, frame.height), placed)))


def seam_weights(covered: np.ndarray, feather: int) -> np.ndarray:
    """How much of the painted picture each pixel takes: 1 where nothing fully covers it, falling off over
    `feather` pixels into the covered part, exactly 0 beyond. Distances grow by alternating 4- and
    8-neighbour steps, an octagon close to a circle, with numpy only."""
    weights = np.where(covered, 0.0, 1.0)
    reached = ~covered
    for step in range(1, feather + 1):
        if reached.all() or not reached.any():
            break
        grown = _grow(reached, diagonal=step % 2 == 0)
        weights[grown & ~reached] = 1.0 - step / (feather + 1)
        reached = grown
    return weights


def _grow(region: np.ndarray, diagonal: bool) -> np.ndarray:
    padded = np.pad(region, 1)
    grown = region | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    if diagonal:
        grown |= padded[:-2, :-2] | padded[:-2, 2:] | padded[2:, :-2] | padded[2:, 2:]
    return grown


def model_input(known: np.ndarray) -> np.ndarray:
    """The frame as the model starts from: the pictures over their mean colour (mid-grey when there is none),
    so a partial repaint (strength < 1) starts near the pictures' tones rather than from black."""
    alpha = known[..., 3:].astype(np.float64) / 255.0
    covered = known[..., 3] == 255
    fill = known[covered][:, :3].mean(axis=0) if covered.any() else np.full(3, 127.0)
    return np.floor(known[..., :3] * alpha + fill * (1.0 - alpha) + 0.5).astype(np.uint8)


def put_back(painted: np.ndarray, known: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The painted picture over the seam and the empty part, the pictures' own pixels everywhere else."""
    w = weights[..., None]
    blended = np.floor(painted.astype(np.float64) * w + known[..., :3].astype(np.float64) * (1.0 - w) + 0.5)
    return np.where(w == 0.0, known[..., :3], blended.astype(np.uint8))


class Outpaint(Operation):
    name = "outpaint"
    title = "Outpaint"
    description = (
        "Fill the empty or transparent part of a frame of the document, blending into the pictures under it; "
        "what they fully cover is kept exactly."
    )
    category = "generate"
    Params = OutpaintParams
    uses_seed = True
    needs_model = True
    pipeline_kind = "inpaint"

    @classmethod
    def placed_at(cls, params: Mapping[str, Any]) -> tuple[float, float] | None:
        return (params["frame"]["x"], params["frame"]["y"])  # the result covers the frame it was painted in

    @classmethod
    def result_size(cls, params: Mapping[str, Any]) -> tuple[int, int] | None:
        return (params["frame"]["width"], params["frame"]["height"])

    @classmethod
    def estimate(
        cls, params: OutpaintParams, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate:
        size = (params.frame.width, params.frame.height)
        steps = denoising_steps(params.steps, params.strength)
        return WorkEstimate(size[0] * size[1], steps, diffusion=True, size=size)

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: OutpaintParams) -> Image:
        from PIL import Image as PILImage

        known = frame_under(inputs, params, ctx)
        weights = seam_weights(known[..., 3] == 255, params.feather)
        if not weights.any():
            return PILImage.fromarray(known[..., :3], mode="RGB")  # nothing to fill: the pictures as they are
        mask = PILImage.fromarray(np.where(weights > 0, 255, 0).astype(np.uint8), mode="L")
        painted = repaint(ctx, PILImage.fromarray(model_input(known), mode="RGB"), mask, params)
        return PILImage.fromarray(put_back(np.asarray(painted.convert("RGB")), known, weights), mode="RGB")
