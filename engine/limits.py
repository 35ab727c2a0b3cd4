"""Bounded work: how much a render costs, decided from its params and input sizes before it starts.

Every operation declares its cost (`Operation.estimate`): output pixels x denoising steps for diffusion,
pixels read or written for editing operations. A server's `RenderLimits` refuse a command whose cost is over
a hard limit (at decide time when the input sizes are known, otherwise just before the render starts), and
an input larger than the model's working size is brought into it by the explicit `resize: "fit"` rule
(`fit_within`), recorded in the layer's params, as A1111's and ComfyUI's users expect.

Pure: no torch, no PIL (the server's decider uses it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Size = tuple[int, int]
ResizeRule = Literal["fit", "none"]
Device = Literal["cpu", "gpu"]


@dataclass(frozen=True, slots=True)
class WorkEstimate:
    """What one render will do: `pixels` produced (or read, for editing ops), `steps` denoising passes over them."""

    pixels: int
    steps: int = 1
    diffusion: bool = False
    size: Size | None = None  # the output size, when it is known before rendering

    @property
    def work(self) -> int:
        return self.pixels * self.steps


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Hard limits of one render, with defaults for a laptop GPU and for a CPU (docs/reliability.md).

    working_pixels: the model's working area; a larger source is resized into it by `resize: "fit"`.
    max_pixels: the largest image one diffusion render may produce.
    max_work: pixels x steps of one diffusion render (512² x 60 steps on CPU is minutes already).
    max_edit_pixels: the largest image an editing operation (crop, resize, ...) may read or write.
    """

    working_pixels: int = 512 * 512
    max_pixels: int = 1024 * 1024
    max_work: int = 512 * 512 * 60
    max_edit_pixels: int = 4096 * 4096
    device: Device = "cpu"

    @classmethod
    def for_device(cls, device: Device, working_side: int = 512) -> RenderLimits:
        if device == "gpu":  # an 8 GB laptop GPU: SDXL at 2048² is about what fits
            return cls(working_side * working_side, 2048 * 2048, 1024 * 1024 * 150, 8192 * 8192, "gpu")
        return cls(working_side * working_side, 1024 * 1024, 512 * 512 * 60, 4096 * 4096, "cpu")

    def check(self, operation: str, estimate: WorkEstimate) -> str | None:
        """Why `estimate` is over a limit (a sentence naming the limit and the setting), or None."""
        if estimate.diffusion:
            if estimate.pixels > self.max_pixels:
                return (
                    f"{operation} would render {_size_text(estimate)}; this server's limit "
                    f"is {_mp(self.max_pixels)} per render (max_pixels, --max-pixels): render smaller, or use "
                    'resize: "fit"'
                )
            if estimate.work > self.max_work:
                return (
                    f"{operation} would take {estimate.steps} steps at {_size_text(estimate)} "
                    f"({estimate.work / 1e6:.1f} M pixel·steps); this server's limit is {self.max_work / 1e6:.1f} M "
                    "pixel·steps per render (max_work, --max-work): use fewer steps or a smaller size"
                )
            return None
        if estimate.pixels > self.max_edit_pixels:
            return (
                f"{operation} would handle {_size_text(estimate)}; this server's limit for "
                f"editing operations is {_mp(self.max_edit_pixels)} (max_edit_pixels)"
            )
        return None

    def describe(self) -> dict[str, int | str]:
        return {
            "working_pixels": self.working_pixels,
            "max_pixels": self.max_pixels,
            "max_work": self.max_work,
            "max_edit_pixels": self.max_edit_pixels,
            "device": self.device,
        }


class OverLimit(ValueError):
    """A render whose cost is over one of the server's `RenderLimits`; the message names the limit."""


def fit_within(size: Size, pixels: int) -> Size:
    """The `resize: "fit"` rule: `size` scaled down (aspect kept, never up) so that its area is at most `pixels`.

    The operations then round the sides down to the model's multiple of 8; the rule is mirrored by the
    client (client/js/limits.js) to show the effective size before anything is sent.
    """
    width, height = size
    if width * height <= pixels:
        return size
    scale = math.sqrt(pixels / (width * height))
    return max(8, math.floor(width * scale)), max(8, math.floor(height * scale))


def working_size(size: Size, rule: ResizeRule, limits: RenderLimits | None) -> Size:
    return fit_within(size, limits.working_pixels) if rule == "fit" and limits is not None else size


def largest(sizes: Mapping[str, Size | None]) -> Size | None:
    known = [size for size in sizes.values() if size is not None]
    return max(known, key=lambda size: size[0] * size[1]) if known else None


def _mp(value: int) -> str:
    side = math.isqrt(value)
    if side * side == value:
        return f"{side}x{side} pixels"
    return f"{value / 1_000_000:.1f} megapixels"


def _size_text(estimate: WorkEstimate) -> str:
    return f"{estimate.size[0]}x{estimate.size[1]}" if estimate.size else f"{estimate.pixels} pixels"
