"""Outpainting (issue #18): a frame of a grown document, away from its origin, is filled where nothing covers
it, with real diffusers pipelines (builtin:tiny), and every pixel the pictures fully cover beyond the seam comes
back bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.blend import to_image
from engine.cache_key import cache_key
from engine.document import Placed, flatten_region
from engine.models.loader import ModelManager, ModelOptions
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


def test_a_family_on_a_16_pixel_grid_outpaints_a_frame_on_the_8_pixel_grid(model_options: ModelOptions) -> None:
    """SD 3 renders on sides of multiples of 16: the frame's 88 x 72 is painted on that grid and brought back,
    and what the picture covers is still kept exactly."""
    renderer = Renderer(ModelManager("builtin:tiny-sd3", model_options))
    source = photo()
    frame = {"x": 150, "y": 40, "width": 88, "height": 72}
    params = {**outpaint_params(feather=8), "frame": frame}
    out = np.asarray(renderer.render("outpaint", params, 3, {"photo": source}).images[0])
    assert out.shape == (72, 88, 3)
    covered_width = PHOTO_AT[0] + 192 - frame["x"]  # 58 columns of the photo, the seam's 8 among them
    original = np.asarray(source)[24:96, 134:192, :3]
    assert np.array_equal(out[:, : covered_width - 8], original[:, : covered_width - 8])
    assert out[:, covered_width:].std() > 1.0


def test_pictures_are_read_as_placed_and_a_half_covered_part_is_painted(renderer: Renderer) -> None:
    """Under the frame: the photo scaled 2x (read as the document shows it) and, over it, a half-transparent
    square (only partly covering: painted like the empty part)."""
    source = photo()
    veil = Image.new("RGBA", (32, 32), (255, 255, 255, 255))
    frame = {"x": 0, "y": 0, "width": 128, "height": 128}
    photo_at = {"layer": "photo", "x": 0, "y": 0, "scale": 2}
    veil_at = {"layer": "veil", "x": 64, "y": 64, "opacity": 0.5}
    params = {**outpaint_params(feather=4), "frame": frame, "layers": [photo_at, veil_at]}
    out = np.asarray(renderer.render("outpaint", params, 2, {"photo": source, "veil": veil}).images[0])
    shown = np.asarray(to_image(flatten_region((0, 0), (128, 128), [Placed(source, scale=2)])))[..., :3]
    kept = np.ones((128, 128), dtype=bool)
    kept[60:100, 60:100] = False  # the veil and its seam
    assert np.array_equal(out[kept], shown[kept])
    assert not np.array_equal(out[64:96, 64:96], shown[64:96, 64:96])


def test_a_region_of_the_document_is_what_the_whole_document_shows_there() -> None:
    """flatten_region (the frame's view) against the whole document cut at the frame: scaled, turned, flipped,
    partly and wholly outside pictures."""
    from engine.document import bounds, flatten

    rng = np.random.default_rng(3)
    pictures = [Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA") for w, h in
                [(40, 30), (25, 50), (60, 20), (16, 16)]]  # fmt: skip
    layers = [
        Placed(pictures[0], x=10, y=5),
        Placed(pictures[1], x=52.5, y=20.25, scale=1.5, rotation=30, flip_x=True, opacity=0.7),
        Placed(pictures[2], x=-30, y=70, rotation=90, flip_y=True),
        Placed(pictures[3], x=300, y=300),  # far outside the region
    ]
    origin, size = (24, 16), (64, 72)
    whole = flatten((160, 160), layers)[16:88, 24:88]
    assert np.allclose(flatten_region(origin, size, layers), whole, atol=1e-9)
    left, top, right, bottom = bounds(Placed(pictures[2], x=-30, y=70, rotation=90))
    assert (left, top, right, bottom) == pytest.approx((-30 + 20, 70 - 20, -30 + 40, 70 + 40))
