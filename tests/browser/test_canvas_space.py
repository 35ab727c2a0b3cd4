"""Layers in space in a real Chromium (issue #18): move a layer with the mouse (one drag, one undo), nudge it
with the arrows, grow the document; the exported composite PNG equals what the stage shows at 100 %."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.support import Canvas, identity, open_editor, row, set_range, wait_until

pytestmark = pytest.mark.slow


def stage_picture(page, width: int, height: int) -> np.ndarray:
    """The stage's pixels over the document frame at 100 % (device pixel ratio 1)."""
    data = page.evaluate(
        """([w, h]) => {
            const ed = window.opendream, v = ed.viewport.view;
            const c = document.querySelector('[data-testid=stage]');
            const ctx = c.getContext('2d');
            return Array.from(ctx.getImageData(Math.round(v.x), Math.round(v.y), w, h).data);
        }""",
        [width, height],
    )
    return np.array(data, dtype=np.uint8).reshape(height, width, 4)


def test_move_a_layer_by_dragging_then_one_undo_and_the_composite_matches_the_stage(pages, server, shoot):
    canvas = Canvas(server, "Space")
    canvas.txt2img("ground", "a field", width=192, height=128)
    canvas.txt2img("sun", "a sun", width=64, height=64)
    canvas.wait_rendered("ground", "sun")
    page = open_editor(pages, canvas.path, identity("Ada"))
    page.evaluate("window.opendream.viewport.setZoom(1)")
    page.click("[data-testid=tool-move]")
    row(page, "sun").click()
    view = page.evaluate(
        "(() => { const v = window.opendream.viewport.view; const r = document.querySelector('[data-testid=stage]').getBoundingClientRect(); return {x: r.left + v.x, y: r.top + v.y}; })()"
    )
    start = (view["x"] + 32, view["y"] + 32)  # the middle of the sun, at (0, 0) so far
    page.mouse.move(*start)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(start[0] + 10 * step, start[1] + 5 * step)
        page.wait_for_timeout(40)
    page.mouse.up()
    wait_until(lambda: canvas.layer("sun")["placement"]["x"] == 80 and canvas.layer("sun")["placement"]["y"] == 40,
               message="the sun moved to (80, 40)")  # fmt: skip
    moves = [event for event in canvas.events() if event["type"] == "layer.transformed"]
    assert len(moves) >= 2 and len({event.get("gesture") for event in moves}) == 1, "one drag, one gesture"
    shoot(page, "18-layer-moved")
    # the exported composite is what the stage shows (at 100 %, up to anti-aliasing at the edges)
    composite = Image.open(io.BytesIO(server.client().get(f"/api/canvases/{canvas.id}/composite.png").content))
    assert composite.size == (192, 128), "the document frame: the first picture's size"
    page.evaluate("window.opendream.select(null)")  # no selection outline over the picture
    page.wait_for_timeout(200)
    shown = stage_picture(page, 192, 128).astype(int)
    exported = np.asarray(composite.convert("RGBA")).astype(int)
    difference = np.abs(shown[..., :3] - exported[..., :3]).max(axis=-1)
    assert np.percentile(difference, 99) <= 8, f"the stage differs from the composite: {np.percentile(difference, 99)}"
    # one undo takes the whole drag back
    page.keyboard.press("Control+z")
    wait_until(lambda: canvas.layer("sun")["placement"]["x"] == 0, message="the drag undone")
    # arrows nudge the selected layer with the move tool
    row(page, "sun").click()
    page.locator("[data-testid=stage]").focus()
    page.evaluate("document.activeElement.blur()")
    for _ in range(3):
        page.keyboard.press("Shift+ArrowRight")
    wait_until(lambda: canvas.layer("sun")["placement"]["x"] == 30, message="nudged by 3 x 10")
    expect(page.locator("[data-testid=tool-move]")).to_have_class(__import__("re").compile("active"))


def test_grow_the_canvas_from_the_toolbar_and_everything_keeps_its_place(pages, server, shoot):
    canvas = Canvas(server, "Grow")
    canvas.txt2img("ground", "a field", width=128, height=64)
    canvas.wait_rendered("ground")
    before = np.asarray(
        Image.open(io.BytesIO(server.client().get(f"/api/canvases/{canvas.id}/composite.png").content)).convert("RGBA")
    )
    page = open_editor(pages, canvas.path, identity("Ada"))
    page.click("[data-testid=document-size-button]")
    page.fill("[data-testid=document-width]", "256")
    page.click("[data-testid=save-document]")
    wait_until(lambda: canvas.state()["document"]["width"] == 256, message="the canvas grown")
    assert canvas.state()["document"] == {"width": 256, "height": 64, "background": None}
    after = np.asarray(
        Image.open(io.BytesIO(server.client().get(f"/api/canvases/{canvas.id}/composite.png").content)).convert("RGBA")
    )
    assert after.shape == (64, 256, 4)
    assert np.array_equal(after[:, :128], before), "the picture kept its place"
    assert not after[:, 128:].any(), "the new room is empty (transparent)"
    expect(page.locator("[data-testid=history-list]")).to_have_count(0)  # the layers tab is open
    shoot(page, "18-canvas-grown")
    page.keyboard.press("Control+z")
    wait_until(lambda: canvas.state()["document"]["width"] == 128, message="the growth undone")


def test_a_mask_painted_on_a_moved_scaled_layer_is_in_that_pictures_own_pixels(pages, server, shoot):
    canvas = Canvas(server, "Mask in space")
    canvas.txt2img("ground", "a field", width=256, height=128)
    canvas.txt2img("boat", "a boat", width=64, height=64)
    canvas.wait_rendered("ground", "boat")
    canvas.command({"type": "transform_layer", "layer_id": "boat", "x": 128, "y": 32, "scale": 2})
    page = open_editor(pages, canvas.path, identity("Ada"))
    page.evaluate("window.opendream.viewport.setZoom(1)")
    row(page, "boat").click()
    page.click("[data-testid=tool-brush]")
    set_range(page.locator("[data-testid=brush-size]"), 8)
    origin = page.evaluate(
        "(() => { const v = window.opendream.viewport.view; const r = document.querySelector('[data-testid=stage]')"
        ".getBoundingClientRect(); return {x: r.left + v.x, y: r.top + v.y}; })()"
    )
    # the boat's picture centre (32, 32) lies at document (128 + 64, 32 + 64) now
    page.mouse.move(origin["x"] + 192 - 20, origin["y"] + 96)
    page.mouse.down()
    page.mouse.move(origin["x"] + 192 + 20, origin["y"] + 96, steps=8)
    page.mouse.up()
    shoot(page, "18-mask-on-placed-layer")
    page.click("[data-testid=mask-save]")
    wait_until(lambda: any(layer["operation"] == "mask" for layer in canvas.state()["layers"]), message="the mask")
    mask = next(layer for layer in canvas.state()["layers"] if layer["operation"] == "mask")
    [stroke] = mask["params"]["strokes"]
    xs = [point[0] for point in stroke["points"]]
    ys = [point[1] for point in stroke["points"]]
    assert 20 <= min(xs) <= 24 and 40 <= max(xs) <= 44, xs  # 32 -/+ 10 picture pixels (20 document / scale 2)
    assert all(abs(y - 32) <= 1 for y in ys), ys
    assert stroke["radius"] == 4, "an 8 px brush on a picture shown twice as large"
    assert mask["placement"] == canvas.layer("boat")["placement"], "the mask lies on its layer"


def test_scale_by_a_corner_handle_and_turn_by_the_knob_each_one_undo(pages, server, shoot):
    canvas = Canvas(server, "Handles")
    canvas.txt2img("ground", "a field", width=256, height=256)
    canvas.txt2img("sun", "a sun", width=64, height=64)
    canvas.wait_rendered("ground", "sun")
    canvas.command({"type": "transform_layer", "layer_id": "sun", "x": 96, "y": 96})
    page = open_editor(pages, canvas.path, identity("Ada"))
    page.evaluate("window.opendream.viewport.setZoom(1)")
    page.click("[data-testid=tool-move]")
    row(page, "sun").click()
    origin = page.evaluate(
        "(() => { const v = window.opendream.viewport.view; const r = document.querySelector('[data-testid=stage]')"
        ".getBoundingClientRect(); return {x: r.left + v.x, y: r.top + v.y}; })()"
    )

    def drag(x0: float, y0: float, x1: float, y1: float) -> None:
        page.mouse.move(origin["x"] + x0, origin["y"] + y0)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(origin["x"] + x0 + (x1 - x0) * step / 10, origin["y"] + y0 + (y1 - y0) * step / 10)
            page.wait_for_timeout(30)
        page.mouse.up()

    # the bottom-right corner (160, 160) pulled out to (192, 192): twice as far from the centre (128, 128)
    drag(160, 160, 192, 192)
    wait_until(lambda: abs(canvas.layer("sun")["placement"]["scale"] - 2) < 0.05, message="scaled twice")
    placed = canvas.layer("sun")["placement"]
    assert abs(placed["x"] - 64) < 2 and abs(placed["y"] - 64) < 2, "about its centre"
    shoot(page, "18-handles-scaled")
    # the knob, 28 px above the top edge's middle (128, 64 - 28), swept a quarter turn to the right
    drag(128, 64 - 28, 128 + 92, 128)
    wait_until(lambda: abs(canvas.layer("sun")["placement"]["rotation"] - 90) < 3, message="a quarter turn")
    shoot(page, "18-handles-turned")
    page.keyboard.press("Control+z")
    wait_until(lambda: canvas.layer("sun")["placement"]["rotation"] == 0, message="the turn undone")
    assert abs(canvas.layer("sun")["placement"]["scale"] - 2) < 0.05, "the scaling stays: one drag, one undo"
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Shift+H")
    wait_until(lambda: canvas.layer("sun")["placement"]["flip_x"] is True, message="mirrored by Shift+H")


def test_painting_a_mask_on_a_covered_layer_shows_it_on_top_and_the_rest_faintly(pages, server, shoot):
    canvas = Canvas(server, "Covered")
    canvas.txt2img("under", "a field", width=128, height=128)
    canvas.txt2img("cover", "a wall", width=128, height=128)
    canvas.wait_rendered("under", "cover")
    under = np.asarray(Image.open(io.BytesIO(
        server.client().get(f"/api/canvases/{canvas.id}/layers/under/image.png").content)).convert("RGBA"))  # fmt: skip
    page = open_editor(pages, canvas.path, identity("Ada"))
    page.evaluate("window.opendream.viewport.setZoom(1)")
    page.wait_for_timeout(200)
    before = stage_picture(page, 128, 128).astype(int)
    row(page, "under").click()
    page.click("[data-testid=tool-brush]")
    page.wait_for_timeout(300)
    during = stage_picture(page, 128, 128).astype(int)
    shoot(page, "18-mask-on-covered-layer")
    # the covered picture is what shows while its mask is painted (the cover only faintly, beneath it)
    assert np.abs(during[8:-8, 8:-8, :3] - under[8:-8, 8:-8, :3].astype(int)).max() <= 3
    assert np.abs(before[8:-8, 8:-8, :3] - under[8:-8, 8:-8, :3].astype(int)).max() > 3, "the cover hid it before"
    page.keyboard.press("Escape")
