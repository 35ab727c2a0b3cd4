"""The document frame: layers placed in space and flattened, exactly as the editor shows them.

One function (`flatten`) serves the composite PNG, exports and tests; the browser draws the same placements
with canvas transforms (client/js/ui/viewport.js) and matches it at 100 % up to anti-aliasing.

A placement puts the image's top-left corner at (x, y) in document pixels, scales it by `scale` about that
corner, then rotates it `rotation` degrees clockwise and flips it about the image's centre. A document pixel
shows the image where its centre falls inside the placed image (crisp edges), sampled bilinearly in
premultiplied alpha with the image's edge pixels repeated; elsewhere it is untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from engine.blend import composite_over, to_float


@dataclass(frozen=True, slots=True)
class Placed:
    """One layer to flatten: its picture, opacity and placement."""

    image: Image.Image
    opacity: float = 1.0
    x: float = 0.0
    y: float = 0.0
    scale: float = 1.0
    rotation: float = 0.0
    flip_x: bool = False
    flip_y: bool = False

    @property
    def axis_aligned_copy(self) -> bool:
        """Whether placing is a plain copy at whole-pixel offsets (no resampling at all)."""
        return (self.scale == 1.0 and self.rotation % 360 == 0 and not self.flip_x and not self.flip_y
                and float(self.x).is_integer() and float(self.y).is_integer())  # fmt: skip


def background_rgba(size: tuple[int, int], background: str | None) -> np.ndarray:
    """The document's empty canvas: transparent, or the background colour ("#rrggbb")."""
    width, height = size
    canvas = np.zeros((height, width, 4), dtype=np.float64)
    if background:
        canvas[..., :3] = [int(background[index : index + 2], 16) / 255.0 for index in (1, 3, 5)]
        canvas[..., 3] = 1.0
    return canvas


def place(layer: Placed, size: tuple[int, int]) -> np.ndarray:
    """`layer`'s picture as straight RGBA floats on a transparent canvas of `size`, where its placement puts it."""
    width, height = size
    pixels = to_float(layer.image)
    if layer.axis_aligned_copy:
        return _copy_at(pixels, size, int(layer.x), int(layer.y))
    h, w = pixels.shape[:2]
    # document pixel centres -> image coordinates: the placement's inverse
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    px, py = (xs + 0.5 - layer.x) / layer.scale - w / 2, (ys + 0.5 - layer.y) / layer.scale - h / 2
    angle = math.radians(layer.rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = cos * px + sin * py, -sin * px + cos * py  # rotated back (clockwise on screen, y down)
    u, v = (-u if layer.flip_x else u) + w / 2, (-v if layer.flip_y else v) + h / 2
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    canvas = np.zeros((height, width, 4), dtype=np.float64)
    if inside.any():
        canvas[inside] = _sample(pixels, u[inside] - 0.5, v[inside] - 0.5)
    return canvas


def flatten(size: tuple[int, int], layers: Sequence[Placed], background: str | None = None) -> np.ndarray:
    """The document: `layers` (bottom first) placed and composited with their opacity over the background."""
    result = background_rgba(size, background)
    for layer in layers:
        result = composite_over(result, place(layer, size), layer.opacity, "normal")
    return result


def flatten_region(
    origin: tuple[int, int], size: tuple[int, int], layers: Sequence[Placed], background: str | None = None
) -> np.ndarray:
    """The rectangle of the document whose top-left corner is `origin` (a generation frame), flattened as
    `flatten` would show it there: every layer moved by -origin. Whole-pixel origins keep whole-pixel layers
    plain copies, so their pixels come out exactly."""
    dx, dy = origin
    # a picture wholly outside the rectangle shows nothing in it: skip its (full-size) resampling
    inside = [layer for layer in layers if _overlaps(bounds(layer), (dx, dy, dx + size[0], dy + size[1]))]
    return flatten(size, [replace(layer, x=layer.x - dx, y=layer.y - dy) for layer in inside], background)


def bounds(layer: Placed) -> tuple[float, float, float, float]:
    """The document box (left, top, right, bottom) around a placed picture: its scaled size turned about its
    centre (a flip keeps the box)."""
    width, height = layer.image.size
    half_w, half_h = layer.scale * width / 2, layer.scale * height / 2
    cx, cy = layer.x + half_w, layer.y + half_h
    angle = math.radians(layer.rotation)
    cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
    reach_x, reach_y = cos * half_w + sin * half_h, sin * half_w + cos * half_h
    return cx - reach_x, cy - reach_y, cx + reach_x, cy + reach_y


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    margin = 1.0  # whole pixels either side: rounding in the box can never drop a picture that shows
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


def _copy_at(pixels: np.ndarray, size: tuple[int, int], x: int, y: int) -> np.ndarray:
    width, height = size
    canvas = np.zeros((height, width, 4), dtype=np.float64)
    h, w = pixels.shape[:2]
    left, top, right, bottom = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if left < right and top < bottom:
        canvas[top:bottom, left:right] = pixels[top - y : bottom - y, left - x : right - x]
    return canvas


def _sample(pixels: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples at pixel-index coordinates (u, v), edges repeated, interpolated premultiplied."""
    h, w = pixels.shape[:2]
    premultiplied = np.concatenate([pixels[..., :3] * pixels[..., 3:], pixels[..., 3:]], axis=-1)
    u, v = np.clip(u, 0, w - 1), np.clip(v, 0, h - 1)
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    top = premultiplied[v0, u0] * (1 - fu) + premultiplied[v0, u1] * fu
    bottom = premultiplied[v1, u0] * (1 - fu) + premultiplied[v1, u1] * fu
    mixed = top * (1 - fv) + bottom * fv
    alpha = mixed[:, 3:]
    colour = np.divide(mixed[:, :3], alpha, out=np.zeros_like(mixed[:, :3]), where=alpha > 0)
    return np.concatenate([colour, alpha], axis=-1)
