"""Outpainting (issue #18): a frame of a grown document, away from its origin, is filled where nothing covers
it, with real diffusers pipelines (builtin:tiny), and every pixel the pictures fully cover beyond the seam comes
back bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.cache_key import cache_key
from engine.ops.outpaint import seam_weights
from engine.render import Renderer

# The document: 320 x 160, grown to the right from a 192 x 128 photo placed at (16, 16).
PHOTO_AT = (16, 16)
FRAME = {"x": 120, "y": 24, "width": 160, "height": 96}  # half over the photo, half over empty space


def photo() -> Image.Image:
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (128, 192, 3), dtype=np.uint8), "RGB")
    ImageDraw.Draw(image).ellipse((40, 20, 150, 110), fill=(240, 200, 40))
    return image.convert("RGBA")


def outpaint_params(feather: int = 16, **extra: object) -> dict[str, object]:
    layer = {"layer": "photo", "x": PHOTO_AT[0], "y": PHOTO_AT[1], "scale": 1, "rotation": 0, "flip_x": False,
             "flip_y": False, "opacity": 1}  # fmt: skip
    return {"frame": FRAME, "layers": [layer], "prompt": "more beach", "steps": 2, "feather": feather, **extra}


def test_outpaint_keeps_every_covered_pixel_beyond_the_seam_and_fills_the_rest(renderer: Renderer) -> None:
    source = photo()
    result = renderer.render("outpaint", outpaint_params(), 11, {"photo": source}).images[0]
    assert result.size == (FRAME["width"], FRAME["height"]) and result.mode == "RGB"
    out = np.asarray(result)
    # the photo's part of the frame: frame x 0..88 (document 120..208), all of its rows (document 24..120)
    left, top = FRAME["x"] - PHOTO_AT[0], FRAME["y"] - PHOTO_AT[1]
    covered_width = PHOTO_AT[0] + 192 - FRAME["x"]
    original = np.asarray(source)[top : top + FRAME["height"], left : left + covered_width, :3]
    kept = covered_width - 16  # beyond the 16-pixel seam
    assert np.array_equal(out[:, :kept], original[:, :kept]), "an outpaint never changes what was there"
    assert not np.array_equal(out[:, kept:covered_width], original[:, kept:]), "the seam blends"
    empty = out[:, covered_width:]
    assert empty.std() > 1.0, "the empty part is painted, not a flat fill"


def test_the_seam_falls_off_inward_and_is_exactly_zero_beyond_it() -> None:
    covered = np.zeros((4, 40), dtype=bool)
    covered[:, :30] = True  # the picture on the left, empty space on the right
    weights = seam_weights(covered, 8)
    assert (weights[:, 30:] == 1).all()
    row = weights[0, :30]
    assert (row[:22] == 0).all() and (np.diff(row[21:]) > 0).all() and row[29] < 1
    assert (seam_weights(covered, 0) == ~covered).all()


def test_a_frame_with_nothing_to_fill_is_the_pictures_themselves(renderer: Renderer) -> None:
    source = photo()
    inside = {"x": 24, "y": 24, "width": 64, "height": 64}
    params = {**outpaint_params(), "frame": inside}
    out = np.asarray(renderer.render("outpaint", params, 1, {"photo": source}).images[0])
    assert np.array_equal(out, np.asarray(source)[8:72, 8:72, :3])


@pytest.mark.parametrize("change", [{"layers.0.x": 20}, {"feather": 4}, {"frame.y": 32}])
def test_the_placements_and_the_frame_are_part_of_the_cache_key(renderer: Renderer, change: dict[str, int]) -> None:
    base = outpaint_params()
    ((path, value),) = change.items()
    fingerprint = renderer.fingerprint_for("outpaint", params=base)
    images = {"layers.0.layer": "a" * 64}
    assert cache_key("outpaint", base, 1, images, fingerprint) != cache_key(
        "outpaint", _with(base, path, value), 1, images, fingerprint
    )


def test_the_pictures_under_the_frame_are_part_of_the_cache_key() -> None:
    """A layer under the frame that renders again (or another canvas's layer of the same id) is another key."""
    params = outpaint_params()
    first = cache_key("outpaint", params, 1, {"layers.0.layer": "a" * 64}, {})
    assert first != cache_key("outpaint", params, 1, {"layers.0.layer": "b" * 64}, {})
    assert params["layers"][0]["layer"] == "photo", "the params themselves are left as they were"  # type: ignore[index]


def _with(params: dict[str, object], path: str, value: object) -> dict[str, object]:
    import copy

    changed = copy.deepcopy(params)
    *parents, leaf = path.split(".")
    node: object = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    node[leaf] = value  # type: ignore[index]
    return changed
