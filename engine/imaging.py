"""Image plumbing the operations share: grid fitting, masks, modes, Canny edges, regions. PIL and numpy only."""

from __future__ import annotations

import numpy as np
from PIL import Image

GRID = 8  # the VAE maps 8x8 pixels to one latent cell


def grid_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return max(GRID, width - width % GRID), max(GRID, height - height % GRID)


def fit_to_grid(image: Image.Image, mode: str = "RGB") -> Image.Image:
    """`image` in `mode`, resized down to the nearest multiple of 8 when it is not one already."""
    image = image.convert(mode) if image.mode != mode else image
    size = grid_size(image.size)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def restore_size(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def mask_from_layer(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """An "L" mask, white = repaint: a layer's alpha when it has transparency, else its luminance."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = image.convert("RGBA").getchannel("A")
        mask = alpha if alpha.getextrema() != (255, 255) else image.convert("L")
    else:
        mask = image.convert("L")
    return mask if mask.size == size else mask.resize(size, Image.Resampling.BILINEAR)


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def normalise_mode(image: Image.Image) -> Image.Image:
    """`image` as RGBA when it has transparency, L when it is grey, else RGB (what the editing ops work in)."""
    mode = "RGBA" if has_alpha(image) else "L" if image.mode in ("1", "L") else "RGB"
    return image if image.mode == mode else image.convert(mode)


def connected_region(selected: np.ndarray, x: int, y: int) -> np.ndarray:
    """The 4-connected part of boolean array `selected` that holds pixel (x, y); all False if it is not selected.

    Works on horizontal runs rather than pixels: each row's runs come from one numpy diff, and the search
    visits runs, so a Python loop runs once per run (a few per row in real pictures), not once per pixel.
    """
    height, width = selected.shape
    region = np.zeros((height, width), dtype=bool)
    if not selected[y, x]:
        return region
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = selected
    edges = np.diff(padded, axis=1)
    run_rows, run_starts = np.nonzero(edges == 1)  # row-major order, so both lists pair up run by run
    _, run_ends = np.nonzero(edges == -1)  # exclusive
    first_run = np.searchsorted(run_rows, np.arange(height + 1))  # runs of row r: first_run[r]:first_run[r+1]
    row_start = first_run[y]
    seed = row_start + int(np.searchsorted(run_starts[row_start : first_run[y + 1]], x, side="right")) - 1
    visited = np.zeros(len(run_rows), dtype=bool)
    visited[seed] = True
    stack = [seed]
    while stack:
        run = stack.pop()
        row, start, end = int(run_rows[run]), int(run_starts[run]), int(run_ends[run])
        region[row, start:end] = True
        for neighbour in (row - 1, row + 1):
            if not 0 <= neighbour < height:
                continue
            a, b = first_run[neighbour], first_run[neighbour + 1]
            # runs of that row overlapping [start, end): they end after `start` and begin before `end`
            low = a + int(np.searchsorted(run_ends[a:b], start, side="right"))
            high = a + int(np.searchsorted(run_starts[a:b], end, side="left"))
            for other in range(low, high):
                if not visited[other]:
                    visited[other] = True
                    stack.append(other)
    return region


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, round(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def _convolve_separable(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    radius = len(kernel) // 2
    padded = np.pad(image, radius, mode="edge")
    height, width = image.shape
    rows = sum(k * padded[:, i : i + width] for i, k in enumerate(kernel))
    return sum(k * rows[i : i + height, :] for i, k in enumerate(kernel))


def canny(image: Image.Image, low: float, high: float, sigma: float = 1.0) -> Image.Image:
    """Canny edges as white-on-black RGB, the control image SD ControlNets are trained on.

    Follows OpenCV's cv2.Canny defaults (3x3 Sobel, L1 gradient magnitude) so that the usual 100/200
    thresholds mean the same thing; a Gaussian blur first stands in for the blur every Canny recipe adds.
    """
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    if sigma > 0:
        gray = _convolve_separable(gray, _gaussian_kernel(sigma))
    p = np.pad(gray, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    magnitude = np.abs(gx) + np.abs(gy)

    # Non-maximum suppression: keep a pixel only if it beats both neighbours across the edge direction.
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    m = np.pad(magnitude, 1)
    h, w = magnitude.shape
    neighbours = {  # direction bin -> the two neighbours along the gradient
        0: (m[1:-1, 2:], m[1:-1, :-2]),
        45: (m[2:, 2:], m[:-2, :-2]),
        90: (m[2:, 1:-1], m[:-2, 1:-1]),
        135: (m[2:, :-2], m[:-2, 2:]),
    }
    bins = np.select([(angle < 22.5) | (angle >= 157.5), angle < 67.5, angle < 112.5], [0, 45, 90], default=135)
    keep = np.zeros((h, w), dtype=bool)
    for direction, (a, b) in neighbours.items():
        selected = bins == direction
        keep |= selected & (magnitude >= a) & (magnitude >= b)
    magnitude = np.where(keep, magnitude, 0.0)

    # Hysteresis: weak edges survive only when connected (8-neighbourhood) to a strong one.
    strong = magnitude > high
    weak = magnitude > low
    edges = strong
    while True:
        q = np.pad(edges, 1)
        grown = (
            q[:-2, :-2] | q[:-2, 1:-1] | q[:-2, 2:] | q[1:-1, :-2] | q[1:-1, 2:] | q[2:, :-2] | q[2:, 1:-1] | q[2:, 2:]
        )
        grown = (grown & weak) | edges
        if np.array_equal(grown, edges):
            break
        edges = grown
    out = np.where(edges, 255, 0).astype(np.uint8)
    return Image.fromarray(out, mode="L").convert("RGB")
