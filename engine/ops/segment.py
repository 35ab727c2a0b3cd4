"""Segment Anything (SAM) through transformers: one mask per prompt point, each its own layer.

SAM weights are not part of the diffusion model, and Opendream never downloads them on its own: point
OPENDREAM_SAM_MODEL at a folder holding a transformers `SamModel` and `SamProcessor` (for instance a copy of
facebook/sam-vit-base made with `save_pretrained`). A hub id also works where the hub is reachable. Without
it the operation stays registered (so canvases that use it still load) but is reported unavailable, and
rendering it raises CapabilityMissing.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage
from pydantic import Field

from engine.errors import CapabilityMissing
from engine.operation import InvalidParams, LayerInput, Operation, Params

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext

SAM_ENV = "OPENDREAM_SAM_MODEL"
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_loaded: dict[tuple[str, str], tuple[Any, Any]] = {}
_load_lock = threading.Lock()


def sam_location() -> str | None:
    return os.environ.get(SAM_ENV) or None


def _missing_reason() -> str:
    return (
        f"segment needs a SAM checkpoint: set {SAM_ENV} to a folder holding a transformers SamModel and "
        "SamProcessor (e.g. facebook/sam-vit-base saved with save_pretrained)"
    )


class SegmentPoint(Params):
    x: float = Field(ge=0, le=100_000, description="Pixel column on the source.")
    y: float = Field(ge=0, le=100_000, description="Pixel row on the source.")


class SegmentParams(Params):
    source: str = LayerInput("The picture to cut into segments.")
    points: list[SegmentPoint] = Field(
        default_factory=list, max_length=64, description="One segment per point; none: a grid of points."
    )
    grid: int = Field(4, ge=1, le=16, description="With no points: prompt SAM with grid x grid evenly spaced points.")
    max_overlap: float = Field(
        0.9, ge=0.0, le=1.0, description="Drop a segment whose IoU with an earlier one is at least this."
    )


def grid_points(size: tuple[int, int], grid: int) -> list[tuple[float, float]]:
    """Cell centres of a grid x grid division of the image, row by row."""
    width, height = size
    return [((col + 0.5) * width / grid, (row + 0.5) * height / grid) for row in range(grid) for col in range(grid)]


def load_sam(location: str, device: Any) -> tuple[Any, Any]:
    """(SamModel, SamProcessor) for `location`, loaded once per process and device."""
    key = (location, str(device))
    with _load_lock:
        if key not in _loaded:
            import transformers

            transformers.utils.logging.disable_progress_bar()
            model = transformers.SamModel.from_pretrained(location).to(device).eval()
            processor = transformers.SamProcessor.from_pretrained(location)
            _loaded[key] = (model, processor)
        return _loaded[key]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


class Segment(Operation):
    name = "segment"
    title = "Segment"
    description = "Cut a layer into segments with Segment Anything: one mask layer per point (or grid cell)."
    category = "mask"
    Params = SegmentParams
    multiple_outputs = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        location = sam_location()
        if location is None:
            return _missing_reason()
        path = Path(location)
        if path.exists():
            return None if (path / "config.json").is_file() else f"segment: {SAM_ENV}={location} has no config.json"
        if not HUB_ID.fullmatch(location):
            return f"segment: {SAM_ENV}={location} does not exist"
        return None

    @classmethod
    def fingerprint_extra(cls) -> dict[str, Any]:
        from engine.models.fingerprint import HashCache, default_hash_cache, hash_model_path

        location = sam_location()
        path = Path(location) if location else None
        weights = hash_model_path(path, HashCache(default_hash_cache())) if path and path.exists() else None
        return {
            "sam_model": location,
            "sam_hash": weights,
            "torch": importlib.metadata.version("torch"),
            "transformers": importlib.metadata.version("transformers"),
        }

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: SegmentParams) -> list[Image]:
        import torch

        reason = self.unavailable_reason()
        location = sam_location()
        if reason is not None or location is None:
            raise CapabilityMissing(reason or _missing_reason())
        source = inputs["source"].convert("RGB")
        points = [(point.x, point.y) for point in params.points] or grid_points(source.size, params.grid)
        for index, (x, y) in enumerate(points):
            if x >= source.width or y >= source.height:
                field = f"points.{index}.{'x' if x >= source.width else 'y'}"
                size = f"{source.width}x{source.height}"
                raise InvalidParams(f"segment: point ({x}, {y}) is outside the {size} source", field)
        model, processor = load_sam(location, ctx.device)
        ctx.check_cancelled()
        # One prompt of one point per segment: SAM encodes the image once and decodes every prompt in a batch.
        encoded = processor(images=source, input_points=[[[list(point)] for point in points]], return_tensors="pt")
        outputs = model(
            pixel_values=encoded["pixel_values"].to(ctx.device),
            input_points=encoded["input_points"].to(ctx.device),
            multimask_output=True,
        )
        masks = processor.image_processor.post_process_masks(
            outputs.pred_masks.cpu(), encoded["original_sizes"], encoded["reshaped_input_sizes"]
        )[0]  # (points, 3 candidates, height, width), bool
        best = outputs.iou_scores[0].cpu().argmax(dim=-1)  # SAM's own quality estimate picks the candidate
        kept: list[np.ndarray] = []
        for index in range(len(points)):
            mask = masks[index, int(best[index])].to(torch.bool).numpy()
            if mask.any() and all(iou(mask, other) < params.max_overlap for other in kept):
                kept.append(mask)
            ctx.progress(index + 1, len(points))
        if not kept:  # every render yields at least one layer
            return [PILImage.new("L", source.size, 0)]
        return [PILImage.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L") for mask in kept]
