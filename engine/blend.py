"""Layer blending, exactly: the W3C Compositing and Blending Level 1 formulas in float64 numpy.

Images are straight (not premultiplied) RGBA arrays of floats in 0..1. A layer is composited over what lies
below it with source-over and a separable blend mode B(Cb, Cs):

    as  = alpha_source * opacity
    Cs' = (1 - ab) * Cs + ab * B(Cb, Cs)          where the backdrop is transparent, the plain source shows
    ao  = as + ab * (1 - as)
    Co  = (as * Cs' + ab * (1 - as) * Cb) / ao    (0 where ao = 0)

and the result is stored as round-half-up(x * 255). Everything is elementwise, so a pixel's value depends
only on the pixels above and below it: the same inputs give the same bytes on every machine.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from PIL import Image

BlendMode = Literal["normal", "multiply", "screen", "overlay", "darken", "lighten"]
BLEND_MODES: tuple[str, ...] = get_args(BlendMode)


def blend(mode: BlendMode, backdrop: np.ndarray, source: np.ndarray) -> np.ndarray:
    """B(Cb, Cs) for colour channels in 0..1."""
    if mode == "normal":
        return source
    if mode == "multiply":
        return backdrop * source
    if mode == "screen":
        return backdrop + source - backdrop * source
    if mode == "overlay":  # hard-light with the layers swapped: the backdrop decides multiply or screen
        return np.where(backdrop <= 0.5, 2.0 * backdrop * source, 1.0 - 2.0 * (1.0 - backdrop) * (1.0 - source))
    if mode == "darken":
        return np.minimum(backdrop, source)
    if mode == "lighten":
        return np.maximum(backdrop, source)
    raise ValueError(f"unknown blend mode {mode!r}")


def composite_over(backdrop: np.ndarray, source: np.ndarray, opacity: float, mode: BlendMode) -> np.ndarray:
    """`source` (H, W, 4) composited over `backdrop` (H, W, 4), both straight RGBA in 0..1."""
    cb, ab = backdrop[..., :3], backdrop[..., 3:]
    cs, a_s = source[..., :3], source[..., 3:] * opacity
    mixed = (1.0 - ab) * cs + ab * blend(mode, cb, cs)
    ao = a_s + ab * (1.0 - a_s)
    premultiplied = a_s * mixed + ab * (1.0 - a_s) * cb
    co = np.divide(premultiplied, ao, out=np.zeros_like(premultiplied), where=ao > 0)
    return np.concatenate([co, ao], axis=-1)


def to_float(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0


def to_image(array: np.ndarray) -> Image.Image:
    """Straight RGBA floats -> an RGBA image, rounding half up (np.rint would round half to even)."""
    values = np.floor(np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(values, mode="RGBA")
