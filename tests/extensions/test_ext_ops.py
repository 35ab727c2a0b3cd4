"""The built-in editing operations on tiny images, with exact expected pixels."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.imaging import connected_region
from engine.operation import InvalidParams
from engine.render import Renderer


def grid(pixels: list[list[tuple[int, ...]]], mode: str = "RGB") -> Image.Image:
    return Image.fromarray(np.array(pixels, dtype=np.uint8), mode=mode)


def pixels(image: Image.Image) -> list[list[Any]]:
    return np.asarray(image).tolist()


def colours(image: Image.Image) -> set[tuple[int, ...]]:
    """The distinct pixel values of an image with several bands."""
    return {tuple(value) for value in np.asarray(image).reshape(-1, len(image.getbands())).tolist()}


def render(renderer: Renderer, name: str, params: dict[str, Any], **inputs: Image.Image) -> Image.Image:
    result = renderer.render(name, params, None, inputs)
    assert len(result.images) == 1
    return result.images[0]


# --- blank, upload -------------------------------------------------------------------------------------------


def test_blank(renderer: Renderer) -> None:
    rgb = render(renderer, "blank", {"width": 3, "height": 2, "colour": "#0a0B0c"})
    assert rgb.mode == "RGB" and rgb.size == (3, 2)
    assert colours(rgb) == {(10, 11, 12)}
    rgba = render(renderer, "blank", {"width": 1, "height": 5, "colour": "#ff000080"})
    assert rgba.mode == "RGBA" and colours(rgba) == {(255, 0, 0, 128)}
    assert colours(render(renderer, "blank", {"width": 2, "height": 2})) == {(255, 255, 255)}


@pytest.mark.parametrize(
    ("image", "format", "mode"),
    [
        (Image.new("RGB", (3, 2), (1, 2, 3)), "PNG", "RGB"),
        (Image.new("RGBA", (3, 2), (1, 2, 3, 4)), "PNG", "RGBA"),
        (Image.new("L", (3, 2), 77), "PNG", "RGB"),
        (Image.new("RGB", (3, 2), (0, 255, 0)), "WEBP", "RGB"),
    ],
)
def test_upload(renderer: Renderer, blobs: Any, image: Image.Image, format: str, mode: str) -> None:
    options = {"lossless": True} if format == "WEBP" else {}
    out = render(renderer, "upload", {"blob": blobs.put_image(image, format, **options)})
    assert out.mode == mode and out.size == (3, 2)
    assert pixels(out) == pixels(image.convert(mode))


def test_upload_keeps_palette_transparency(renderer: Renderer, blobs: Any) -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.putpixel((1, 0), 1)
    out = render(renderer, "upload", {"blob": blobs.put_image(palette, "PNG", transparency=0)})
    assert out.mode == "RGBA" and pixels(out) == [[[255, 0, 0, 0], [0, 0, 255, 255]]]


def test_upload_of_a_missing_blob_fails_clearly(renderer: Renderer) -> None:
    from engine.errors import MissingBlob

    with pytest.raises(MissingBlob, match="f" * 64):
        renderer.render("upload", {"blob": "f" * 64}, None, {})


# --- crop, resize, adjust ------------------------------------------------------------------------------------

NUMBERED = grid([[(x, y, 10 * y + x) for x in range(4)] for y in range(3)])  # 4x3, each pixel says where it is


def test_crop(renderer: Renderer) -> None:
    out = render(renderer, "crop", {"source": "s", "x": 1, "y": 1, "width": 2, "height": 2}, source=NUMBERED)
    assert pixels(out) == [[[1, 1, 11], [2, 1, 12]], [[1, 2, 21], [2, 2, 22]]]
    whole = render(renderer, "crop", {"source": "s", "x": 0, "y": 0, "width": 4, "height": 3}, source=NUMBERED)
    assert pixels(whole) == pixels(NUMBERED)


@pytest.mark.parametrize(
    ("region", "field", "message"),
    [
        ({"x": 4, "y": 0, "width": 1, "height": 1}, "x", "x = 4 is outside the source, which is 4 pixels wide"),
        ({"x": 0, "y": 3, "width": 1, "height": 1}, "y", "y = 3 is outside"),
        ({"x": 1, "y": 0, "width": 4, "height": 1}, "width", "x + width = 5 is past the source's right edge (4)"),
        ({"x": 0, "y": 2, "width": 1, "height": 2}, "height", "y + height = 4 is past the source's bottom edge (3)"),
    ],
)
def test_crop_outside_the_source_is_refused_at_render(
    renderer: Renderer, region: dict[str, int], field: str, message: str
) -> None:
    with pytest.raises(InvalidParams, match=re.escape(message)) as caught:
        renderer.render("crop", {"source": "s", **region}, None, {"source": NUMBERED})
    assert caught.value.field == field


def test_resize(renderer: Renderer) -> None:
    flat = Image.new("RGBA", (5, 3), (10, 20, 30, 255))
    out = render(renderer, "resize", {"source": "s", "width": 7, "height": 2}, source=flat)
    assert out.size == (7, 2) and out.mode == "RGBA" and colours(out) == {(10, 20, 30, 255)}
    # Pillow resizes RGBA premultiplied (no dark fringes); at low alpha the colour loses precision, alpha does not
    faint = render(
        renderer, "resize", {"source": "s", "width": 7, "height": 2}, source=Image.new("RGBA", (5, 3), (10, 20, 30, 40))
    )
    assert {value[3] for value in colours(faint)} == {40}
    big = render(renderer, "resize", {"source": "s", "width": 8, "height": 6}, source=NUMBERED)
    assert pixels(big) == pixels(NUMBERED.resize((8, 6), Image.Resampling.LANCZOS))
    one_bit = Image.new("1", (4, 4), 1)
    assert render(renderer, "resize", {"source": "s", "width": 2, "height": 2}, source=one_bit).mode == "L"


def test_adjust(renderer: Renderer) -> None:
    colour = grid([[(200, 40, 90, 255), (10, 120, 250, 60)]], "RGBA")
    same = render(renderer, "adjust", {"source": "s"}, source=colour)
    assert pixels(same) == pixels(colour)
    black = render(renderer, "adjust", {"source": "s", "brightness": 0}, source=colour)
    assert pixels(black) == [[[0, 0, 0, 255], [0, 0, 0, 60]]]  # alpha is kept
    grey = render(renderer, "adjust", {"source": "s", "saturation": 0}, source=colour)
    luma = colour.convert("RGB").convert("L")
    assert [p[:3] for p in pixels(grey)[0]] == [[v, v, v] for v in np.asarray(luma)[0].tolist()]
    flat = render(renderer, "adjust", {"source": "s", "contrast": 0}, source=colour.convert("RGB"))
    assert len(colours(flat)) == 1  # all one grey: the mean luminance
    brighter = render(
        renderer, "adjust", {"source": "s", "brightness": 1.5}, source=Image.new("RGB", (1, 1), (100, 100, 200))
    )
    assert brighter.getpixel((0, 0)) == (150, 150, 255)


# --- composite -----------------------------------------------------------------------------------------------

BOTTOM = grid([[(100, 200, 50), (100, 200, 50)], [(200, 60, 130), (200, 60, 130)]])
TOP = Image.new("RGB", (2, 2), (50, 100, 255))
# Worked by hand from the formulas in engine/blend.py: row 0 is (100, 200, 50) under (50, 100, 255), row 1
# (200, 60, 130) under it; both opaque, so the result is B(backdrop, source), rounded half up.
BLENDS = {
    "normal": [(50, 100, 255), (50, 100, 255)],
    "multiply": [(20, 78, 50), (39, 24, 130)],  # 100*50/255 = 19.6, 200*100/255 = 78.4; 200*50/255 = 39.2
    "screen": [(130, 222, 255), (211, 136, 255)],  # 100+50-19.6 = 130.4; 200+50-39.2 = 210.8
    "overlay": [(39, 188, 100), (167, 47, 255)],  # 2*100*50/255 = 39.2; 255-2*55*155/255 = 188.1; 255-2*55*205/255
    "darken": [(50, 100, 50), (50, 60, 130)],
    "lighten": [(100, 200, 255), (200, 100, 255)],
}


@pytest.mark.parametrize("mode", sorted(BLENDS))
def test_composite_blend_modes(renderer: Renderer, mode: str) -> None:
    params = {"layers": [{"layer": "b"}, {"layer": "t", "blend_mode": mode}]}
    out = renderer.render("composite", params, None, {"layers.0.layer": BOTTOM, "layers.1.layer": TOP}).images[0]
    assert out.mode == "RGBA" and out.size == (2, 2)
    row0, row1 = BLENDS[mode]
    assert pixels(out) == [[[*row0, 255]] * 2, [[*row1, 255]] * 2]


def test_composite_opacity_visibility_alpha_and_offsets(renderer: Renderer) -> None:
    red = Image.new("RGB", (2, 2), (254, 0, 0))
    blue = Image.new("RGB", (2, 2), (0, 0, 254))
    half = {"layers": [{"layer": "a"}, {"layer": "b", "opacity": 0.5}]}
    out = renderer.render("composite", half, None, {"a": blue, "b": red}).images[0]  # inputs by layer id
    assert colours(out) == {(127, 0, 127, 255)}

    hidden = {"layers": [{"layer": "a"}, {"layer": "b", "visible": False}]}
    assert colours(renderer.render("composite", hidden, None, {"a": blue, "b": red}).images[0]) == {(0, 0, 254, 255)}

    # a translucent first layer over nothing is itself; a translucent layer over it mixes by source-over
    glass = Image.new("RGBA", (1, 1), (10, 20, 30, 100))
    alone = renderer.render("composite", {"layers": [{"layer": "g"}]}, None, {"g": glass}).images[0]
    assert alone.getpixel((0, 0)) == (10, 20, 30, 100)
    white = Image.new("RGBA", (1, 1), (255, 255, 255, 51))  # alpha 0.2 over 100/255
    stacked = renderer.render("composite", {"layers": [{"layer": "g"}, {"layer": "w"}]}, None, {"g": glass, "w": white})
    # ao = 0.2 + 0.392*0.8 = 0.5137 -> 131.0; blue: (0.2*1 + 0.392*0.8*0.1176)/ao = 0.4612 -> 117.6 -> 118
    assert stacked.images[0].getpixel((0, 0)) == (105, 111, 118, 131)

    # the canvas takes width/height; a layer placed at x=1 covers columns 1.. and is clipped at the edge
    shifted = {"width": 3, "layers": [{"layer": "a"}, {"layer": "b", "x": 1, "blend_mode": "multiply"}]}
    out = renderer.render(
        "composite", shifted, None, {"a": blue, "b": Image.new("RGB", (2, 2), (255, 255, 100))}
    ).images[0]
    assert out.size == (3, 2)
    assert pixels(out)[0] == [
        [0, 0, 254, 255],
        [0, 0, 100, 255],
        [255, 255, 100, 255],
    ]  # 254*100/255 = 99.6; over nothing: plain


# --- mask ----------------------------------------------------------------------------------------------------


def test_mask_strokes(renderer: Renderer) -> None:
    layer = Image.new("RGB", (9, 5))
    out = render(renderer, "mask", {"layer": "l", "strokes": [{"points": [[2, 2], [6, 2]], "radius": 1}]}, layer=layer)
    assert out.mode == "L" and out.size == (9, 5)
    assert (np.asarray(out) // 255).tolist() == [  # pixel centres within 1 of the segment (2, 2)-(6, 2)
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
    strokes = [{"points": [[2, 3], [6, 3]], "radius": 2}, {"points": [[4, 3]], "radius": 1, "erase": True}]
    out = render(renderer, "mask", {"layer": "l", "strokes": strokes}, layer=Image.new("RGB", (9, 7)))
    assert (np.asarray(out) // 255).tolist() == [  # within 2 of the segment, less within 1 of (4, 3)
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0, 1, 1, 1, 0],
        [1, 1, 1, 0, 0, 0, 1, 1, 1],
        [0, 1, 1, 1, 0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
    assert set(np.unique(np.asarray(out)).tolist()) == {0, 255}


def test_mask_from_a_blob_then_strokes(renderer: Renderer, blobs: Any) -> None:
    painted = Image.new("RGBA", (4, 2), (0, 0, 0, 0))
    painted.paste((255, 255, 255, 255), (0, 0, 2, 2))  # left half opaque = selected
    sha = blobs.put_image(painted)
    layer = Image.new("RGB", (4, 2))
    out = render(renderer, "mask", {"layer": "l", "blob": sha}, layer=layer)
    assert pixels(out) == [[255, 255, 0, 0], [255, 255, 0, 0]]
    erase = {"layer": "l", "blob": sha, "strokes": [{"points": [[0, 0]], "radius": 0.5, "erase": True}]}
    assert pixels(render(renderer, "mask", erase, layer=layer)) == [[0, 255, 0, 0], [255, 255, 0, 0]]
    # an upload of another size is scaled to the bound layer
    assert render(renderer, "mask", {"layer": "l", "blob": sha}, layer=Image.new("RGB", (8, 4))).size == (8, 4)


def test_mask_stroke_geometry() -> None:
    from engine.ops.mask import Stroke, paint_strokes

    dot = paint_strokes(Image.new("L", (3, 3)), [Stroke(points=[(1, 1)], radius=0.5)])
    assert pixels(dot) == [[0, 0, 0], [0, 255, 0], [0, 0, 0]]  # the smallest brush still paints its pixel
    # a diagonal is as thick as a horizontal line; joins are round: an L-shaped stroke with radius 1.5
    corner = paint_strokes(Image.new("L", (7, 7)), [Stroke(points=[(1, 1), (5, 1), (5, 5)], radius=1.5)])
    assert (np.asarray(corner) // 255).tolist() == [
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 1],
    ]
    outside = paint_strokes(Image.new("L", (4, 4)), [Stroke(points=[(-10, -10), (-5, -5)], radius=2)])
    assert not np.asarray(outside).any()


def test_mask_without_strokes_is_empty(renderer: Renderer) -> None:
    out = render(renderer, "mask", {"layer": "l"}, layer=Image.new("RGBA", (3, 2)))
    assert out.mode == "L" and pixels(out) == [[0, 0, 0], [0, 0, 0]]


# --- magic wand ----------------------------------------------------------------------------------------------

R, r, B = (200, 0, 0), (190, 10, 5), (0, 0, 200)
WAND = grid(
    [
        [R, R, B, R, R],
        [R, r, B, R, B],
        [B, B, B, R, B],
        [R, B, R, R, B],
    ]
)


def selection(image: Image.Image) -> list[list[int]]:
    return (np.asarray(image) // 255).tolist()


def test_magic_wand(renderer: Renderer) -> None:
    tight = render(renderer, "magic_wand", {"source": "s", "x": 0, "y": 0, "tolerance": 5}, source=WAND)
    assert tight.mode == "L" and selection(tight) == [
        [1, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    loose = render(renderer, "magic_wand", {"source": "s", "x": 0, "y": 0, "tolerance": 10}, source=WAND)
    assert selection(loose) == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    right = render(renderer, "magic_wand", {"source": "s", "x": 3, "y": 3, "tolerance": 0}, source=WAND)
    assert selection(right) == [[0, 0, 0, 1, 1], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 1, 1, 0]]
    every = {"source": "s", "x": 0, "y": 0, "tolerance": 10, "contiguous": False}
    assert selection(render(renderer, "magic_wand", every, source=WAND)) == [
        [1, 1, 0, 1, 1],
        [1, 1, 0, 1, 0],
        [0, 0, 0, 1, 0],
        [1, 0, 1, 1, 0],
    ]
    with pytest.raises(InvalidParams, match="outside") as caught:
        renderer.render("magic_wand", {"source": "s", "x": 5, "y": 0}, None, {"source": WAND})
    assert caught.value.field == "x"


def test_magic_wand_tolerance_covers_alpha(renderer: Renderer) -> None:
    image = grid([[(9, 9, 9, 255), (9, 9, 9, 0)]], "RGBA")
    assert selection(render(renderer, "magic_wand", {"source": "s", "x": 0, "y": 0}, source=image)) == [[1, 0]]


def test_connected_region_matches_a_plain_flood_fill() -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        selected = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < rng.uniform(0.3, 0.8)
        y, x = int(rng.integers(selected.shape[0])), int(rng.integers(selected.shape[1]))
        assert (connected_region(selected, x, y) == _bfs(selected, x, y)).all()


def _bfs(selected: np.ndarray, x: int, y: int) -> np.ndarray:
    region = np.zeros_like(selected)
    stack = [(y, x)] if selected[y, x] else []
    while stack:
        row, col = stack.pop()
        if (
            0 <= row < selected.shape[0]
            and 0 <= col < selected.shape[1]
            and selected[row, col]
            and not region[row, col]
        ):
            region[row, col] = True
            stack += [(row + 1, col), (row - 1, col), (row, col + 1), (row, col - 1)]
    return region


def test_magic_wand_on_a_large_picture_is_quick(renderer: Renderer) -> None:
    import time

    rng = np.random.default_rng(1)
    noise = Image.fromarray((rng.random((1024, 1024)) < 0.6).astype(np.uint8) * 255, mode="L")
    started = time.perf_counter()
    out = render(renderer, "magic_wand", {"source": "s", "x": 0, "y": 0, "tolerance": 0}, source=noise.convert("RGB"))
    assert time.perf_counter() - started < 10
    assert out.size == (1024, 1024)
