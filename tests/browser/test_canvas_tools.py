"""The tools on the picture in a real Chromium (issue #18): draw a generation frame and generate into it, crop by
dragging a rectangle on the stage, pick a magic-wand point by clicking, outpaint a grown canvas."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.support import Canvas, identity, set_range, stage_pixel, wait_until

pytestmark = pytest.mark.slow


def open_capturing(pages: Any, canvas: Canvas, zoom: float = 2) -> tuple[Any, list[dict[str, Any]]]:
    """The editor on `canvas`, with every command it sends over the WebSocket kept (as sent)."""
    page = pages.new(None, storage=identity("Ada"))
    sent: list[dict[str, Any]] = []

    def listen(ws: Any) -> None:
        def frame(payload: Any) -> None:
            if isinstance(payload, str) and '"command"' in payload:
                message = json.loads(payload)
                if message.get("type") == "command":
                    sent.append(message["command"])

        ws.on("framesent", frame)

    page.on("websocket", listen)
    page.goto(canvas.path)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    page.evaluate(f"window.opendream.viewport.setZoom({zoom})")
    return page, sent


def on_stage(page: Any, x: float, y: float) -> tuple[float, float]:
    """The page position of document point (x, y)."""
    at = page.evaluate(
        """([x, y]) => { const v = window.opendream.viewport.view;
            const r = document.querySelector('[data-testid=stage]').getBoundingClientRect();
            return [r.left + v.x + x * v.scale, r.top + v.y + y * v.scale]; }""",
        [x, y],
    )
    return at[0], at[1]


def drag(page: Any, start: tuple[float, float], end: tuple[float, float], steps: int = 8, during: Any = None) -> None:
    """A mouse drag between two document points, in steps; `during()` runs halfway, the button still down."""
    page.mouse.move(*on_stage(page, *start))
    page.mouse.down()
    for step in range(1, steps + 1):
        t = step / steps
        page.mouse.move(*on_stage(page, start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t))
        page.wait_for_timeout(30)
        if during and step == steps // 2:
            during()
    page.mouse.up()


def pick_operation(page: Any, name: str) -> None:
    page.click("[data-testid=op-picker]")
    page.click(f"[data-testid=op-menu] [data-op={name}]")
    expect(page.locator(f".op-form[data-operation={name}]")).to_be_visible()


def number(page: Any, key: str) -> Any:
    return page.locator(f"[data-testid=left-panel] .field[data-field={key}] input[type=number]")


def added(sent: list[dict[str, Any]], operation: str) -> dict[str, Any]:
    return next(c for c in sent if c["type"] == "add_layer" and c["operation"] == operation)


def test_draw_a_generation_frame_and_generate_into_it(pages, server, shoot):
    canvas = Canvas(server, "Frame")
    canvas.txt2img("ground", "a field", width=256, height=128)
    canvas.wait_rendered("ground")
    page, sent = open_capturing(pages, canvas)
    page.keyboard.press("f")
    expect(page.locator("[data-testid=tool-frame]")).to_have_class(__import__("re").compile("active"))
    drag(page, (129, 2), (190, 40))  # snapped, and never under 64 x 64
    wait_until(lambda: page.evaluate("window.opendream.mask.frames.frame"), message="a frame drawn")
    assert page.evaluate("window.opendream.mask.frames.frame") == {"x": 128, "y": 0, "width": 64, "height": 64}
    # a corner handle resizes it (the opposite corner stays), the inside moves it
    drag(page, (192, 64), (255, 97))
    assert page.evaluate("window.opendream.mask.frames.frame") == {"x": 128, "y": 0, "width": 128, "height": 96}
    drag(page, (160, 40), (150, 50))
    frame = page.evaluate("window.opendream.mask.frames.frame")
    assert frame == {"x": 120, "y": 8, "width": 128, "height": 96}, frame
    note = page.locator("[data-testid=frame-note]")
    expect(note).to_contain_text("Generating into the frame 128 \u00d7 96 at 120, 8")
    expect(note.locator("[data-testid=clear-frame]")).to_be_visible()
    expect(number(page, "width")).to_have_value("128")  # the form takes the frame's size
    expect(number(page, "height")).to_have_value("96")
    # the stage draws it, with its corner handles while the frame tool is on
    corner = on_stage(page, 120, 8)
    wait_until(
        lambda: stage_pixel(page, corner[0] + 1, corner[1] + 1)[:3] == [255, 255, 255], 5, message="the handle drawn"
    )
    shoot(page, "18-frame-drawn")
    page.locator("[data-testid=left-panel] textarea").first.fill("a red barn")
    page.click("[data-testid=generate]")
    wait_until(lambda: any(c["type"] == "add_layer" for c in sent), message="the add_layer sent")
    command = added(sent, "txt2img")
    assert command["params"]["width"] == 128 and command["params"]["height"] == 96
    assert command["params"]["prompt"] == "a red barn"
    assert command["placement"] == {"x": 120, "y": 8}
    # the server places the new picture at the frame's corner
    barn = command["layer_id"]
    canvas.wait_rendered(barn)
    placement = canvas.layer(barn)["placement"]
    assert (placement["x"], placement["y"], placement["scale"]) == (120, 8, 1)
    assert canvas.layer(barn)["output"]["width"] == 128
    page.wait_for_timeout(300)
    shoot(page, "18-generated-into-frame")
    # Clear frame: the form goes back to its own size, nothing more is placed
    note.locator("[data-testid=clear-frame]").click()
    expect(note).to_be_hidden()
    assert page.evaluate("window.opendream.mask.frames.frame") is None
    # a click with the frame tool makes the smallest frame there; Escape clears it
    page.mouse.click(*on_stage(page, 10, 10))
    expect(note).to_contain_text("Generating into the frame 64 \u00d7 64 at 8, 8")
    page.keyboard.press("Escape")
    expect(note).to_be_hidden()


def test_crop_by_dragging_a_rectangle_on_the_picture_and_the_crop_stays_where_it_was_cut(pages, server, shoot):
    canvas = Canvas(server, "Crop")
    canvas.txt2img("ground", "a field", width=192, height=128)
    canvas.wait_rendered("ground")
    canvas.command({"type": "resize_canvas", "width": 256, "height": 192, "background": None})
    canvas.command({"type": "transform_layer", "layer_id": "ground", "x": 32, "y": 16, "scale": 1, "rotation": 0,
                    "flip_x": False, "flip_y": False})  # fmt: skip
    page, sent = open_capturing(pages, canvas)
    pick_operation(page, "crop")
    expect(page.locator("[data-testid=pick-hint]")).to_contain_text("Drag a rectangle")

    def halfway() -> None:  # the fields follow the drag live
        expect(number(page, "x")).to_have_value("20")
        assert int(number(page, "width").input_value()) < 80
        shoot(page, "18-crop-dragging")

    drag(page, (52, 36), (132, 96), during=halfway)  # picture pixels (20, 20) to (100, 80)
    for key, value in {"x": "20", "y": "20", "width": "80", "height": "60"}.items():
        expect(number(page, key)).to_have_value(value)
    expect(page.locator("[data-testid=left-panel] .pick-tile.selected[data-layer-id=ground]")).to_be_visible()
    shoot(page, "18-crop-dragged")
    page.click("[data-testid=generate]")
    wait_until(lambda: any(c["type"] == "add_layer" for c in sent), message="the crop sent")
    command = added(sent, "crop")
    assert command["params"] == {"source": "ground", "x": 20, "y": 20, "width": 80, "height": 60}
    canvas.wait_rendered(command["layer_id"])
    layer = canvas.layer(command["layer_id"])
    assert (layer["output"]["width"], layer["output"]["height"]) == (80, 60)
    assert (layer["placement"]["x"], layer["placement"]["y"]) == (52, 36), "the crop stays where it was cut"
    page.evaluate("window.opendream.select(null)")
    shoot(page, "18-crop-made")
    # its pixels are the source's there
    composite = Image.open(io.BytesIO(server.client().get(f"/api/canvases/{canvas.id}/composite.png").content))
    assert composite.size == (256, 192)


def test_magic_wand_by_clicking_a_point_on_the_picture(pages, server, shoot):
    canvas = Canvas(server, "Wand")
    buffer = io.BytesIO()
    picture = Image.new("RGB", (96, 64), (200, 40, 40))
    picture.paste((30, 90, 220), (48, 0, 96, 64))  # left half red, right half blue
    picture.save(buffer, format="PNG")
    blob = canvas.http.post(f"/api/blobs?canvas={canvas.id}", content=buffer.getvalue(),
                            headers={"content-type": "image/png"})  # fmt: skip
    assert blob.status_code == 201, blob.text
    canvas.command({"type": "add_layer", "layer_id": "photo", "operation": "upload",
                    "params": {"blob": blob.json()["sha256"]}, "name": "Photo"})  # fmt: skip
    canvas.wait_rendered("photo")
    canvas.command({"type": "resize_canvas", "width": 160, "height": 96, "background": None})
    canvas.command({"type": "transform_layer", "layer_id": "photo", "x": 16, "y": 8, "scale": 1, "rotation": 0,
                    "flip_x": False, "flip_y": False})  # fmt: skip
    page, sent = open_capturing(pages, canvas, zoom=3)
    pick_operation(page, "magic_wand")
    expect(page.locator("[data-testid=pick-hint]")).to_contain_text("Click the picture")
    page.mouse.click(*on_stage(page, 16 + 70.5, 8 + 12.5))  # the picture's pixel (70, 12): blue
    expect(number(page, "x")).to_have_value("70")
    expect(number(page, "y")).to_have_value("12")
    slider = page.locator("[data-testid=left-panel] .field[data-field=tolerance] input[type=range]")
    set_range(slider, 40)
    expect(number(page, "tolerance")).to_have_value("40")
    shoot(page, "18-wand-clicked")
    page.click("[data-testid=generate]")
    wait_until(lambda: any(c["type"] == "add_layer" for c in sent), message="the wand sent")
    command = added(sent, "magic_wand")
    assert {k: command["params"][k] for k in ("source", "x", "y", "tolerance")} == {"source": "photo", "x": 70, "y": 12,
                                                                                      "tolerance": 40}  # fmt: skip
    canvas.wait_rendered(command["layer_id"])
    layer = canvas.layer(command["layer_id"])
    assert (layer["placement"]["x"], layer["placement"]["y"]) == (16, 8), "the selection lies on its picture"
    mask = server.client().get(f"/api/blobs/{layer['output']['sha256']}").content
    selected = Image.open(io.BytesIO(mask)).convert("L")
    assert selected.getpixel((70, 12)) == 255 and selected.getpixel((10, 12)) == 0, "the blue half selected"
    page.wait_for_timeout(300)
    shoot(page, "18-wand-mask")


def test_outpaint_a_grown_canvas_into_a_frame_over_the_new_room(pages, server, shoot):
    canvas = Canvas(server, "Outpaint")
    canvas.txt2img("ground", "a field", width=128, height=64)
    canvas.wait_rendered("ground")
    before = Image.open(io.BytesIO(server.client().get(f"/api/canvases/{canvas.id}/composite.png").content))
    page, sent = open_capturing(pages, canvas)
    # grow the canvas to the right, then draw the frame over the new room (a little over the picture: the seam)
    page.click("[data-testid=document-size-button]")
    page.fill("[data-testid=document-width]", "256")
    page.click("[data-testid=save-document]")
    wait_until(lambda: canvas.state()["document"]["width"] == 256, message="the canvas grown")
    page.evaluate("window.opendream.viewport.fitToScreen()")  # the grown canvas in sight
    page.click("[data-testid=tool-frame]")
    drag(page, (97, 1), (223, 62))
    wait_until(lambda: page.evaluate("window.opendream.mask.frames.frame"), message="a frame drawn")
    assert page.evaluate("window.opendream.mask.frames.frame") == {"x": 96, "y": 0, "width": 128, "height": 64}
    page.locator("[data-testid=left-panel] textarea").first.fill("more of the field")
    outpaint = page.locator("[data-testid=outpaint]")
    expect(outpaint).to_be_visible()
    shoot(page, "18-outpaint-frame")
    outpaint.click()
    wait_until(lambda: any(c["type"] == "add_layer" for c in sent), message="the outpaint sent")
    command = added(sent, "outpaint")
    assert command["params"] == {
        "frame": {"x": 96, "y": 0, "width": 128, "height": 64},
        "layers": [
            {
                "layer": "ground",
                "x": 0,
                "y": 0,
                "scale": 1,
                "rotation": 0,
                "flip_x": False,
                "flip_y": False,
                "opacity": 1,
            }
        ],
        "prompt": "more of the field",
    }
    canvas.wait_rendered(command["layer_id"], timeout=120)
    layer = canvas.layer(command["layer_id"])
    assert (layer["placement"]["x"], layer["placement"]["y"]) == (96, 0), "placed at its frame"
    assert (layer["output"]["width"], layer["output"]["height"]) == (128, 64)
    after = Image.open(io.BytesIO(server.client().get(f"/api/canvases/{canvas.id}/composite.png").content))
    old = np.asarray(before.convert("RGBA"))
    new = np.asarray(after.convert("RGBA"))
    assert new.shape == (64, 256, 4)
    assert np.array_equal(new[:, :96], old[:, :96]), "the picture outside the frame untouched"
    assert (new[:, 128:224, 3] == 255).all(), "the new room painted"
    assert not new[:, 224:].any(), "nothing past the frame"
    page.evaluate("window.opendream.select(null)")
    page.wait_for_timeout(300)
    shoot(page, "18-outpainted")
    # outpaint picked as the operation: the frame and the pictures come from the stage, not from fields
    page.evaluate("window.opendream.mask.frames.set({x: 160, y: 0, width: 96, height: 64})")
    pick_operation(page, "outpaint")
    expect(page.locator("[data-testid=frame-text]")).to_have_text("Outpainting the frame 96 \u00d7 64 at 160, 0")
    expect(page.locator("[data-testid=left-panel] .field[data-field=frame]")).to_have_count(0)
    expect(page.locator("[data-testid=left-panel] .field[data-field=layers]")).to_have_count(0)
    page.locator("[data-testid=left-panel] textarea").first.fill("a fence")
    page.click("[data-testid=generate]")
    wait_until(lambda: sum(c.get("operation") == "outpaint" for c in sent) == 2, message="the second outpaint sent")
    second = [c for c in sent if c.get("operation") == "outpaint"][-1]
    assert second["params"]["frame"] == {"x": 160, "y": 0, "width": 96, "height": 64}
    assert [item["layer"] for item in second["params"]["layers"]] == ["ground", command["layer_id"]]
    assert second["params"]["prompt"] == "a fence" and second["params"]["steps"] == 30
    canvas.wait_rendered(second["layer_id"], timeout=120)
    assert (canvas.layer(second["layer_id"])["placement"]["x"], canvas.layer(second["layer_id"])["placement"]["y"]) == (
        160,
        0,
    )


def test_an_img2img_of_the_frame_reads_the_pictures_under_it_and_lands_there_one_undo(pages, server, shoot):
    canvas = Canvas(server, "Img2img of a frame")
    canvas.txt2img("left", "a shore", width=128, height=64)
    canvas.txt2img("right", "a cliff", width=64, height=64)
    canvas.wait_rendered("left", "right")
    canvas.command({"type": "resize_canvas", "width": 192, "height": 64})
    canvas.command({"type": "transform_layer", "layer_id": "right", "x": 128, "y": 0})
    page, sent = open_capturing(pages, canvas, zoom=1)
    page.evaluate("window.opendream.mask.frames.set({x: 96, y: 0, width: 64, height: 64})")  # across the seam
    pick_operation(page, "img2img")
    expect(page.locator("[data-testid=frame-text]")).to_contain_text(
        "Reading the pictures under the frame 64 \u00d7 64 at 96, 0"
    )
    page.locator("[data-testid=left-panel] textarea").first.fill("one coast")
    shoot(page, "18-img2img-of-frame-form")
    page.click("[data-testid=generate]")
    wait_until(lambda: any(c.get("operation") == "img2img" for c in sent), message="the img2img sent")
    flatten, img2img = added(sent, "flatten"), added(sent, "img2img")
    assert img2img["params"]["source"] == flatten["layer_id"]
    assert [item["layer"] for item in flatten["params"]["layers"]] == ["left", "right"]
    canvas.wait_rendered(flatten["layer_id"], img2img["layer_id"], timeout=120)
    for layer_id in (flatten["layer_id"], img2img["layer_id"]):
        placement = canvas.layer(layer_id)["placement"]
        assert (placement["x"], placement["y"]) == (96, 0), "both lie at the frame"
    gestures = {
        e.get("gesture")
        for e in canvas.events()
        if e["type"] == "layer.added" and e["payload"]["layer_id"] in (flatten["layer_id"], img2img["layer_id"])
    }
    assert len(gestures) == 1 and None not in gestures, "one gesture"
    page.evaluate("window.opendream.select(null)")
    shoot(page, "18-img2img-of-frame")
    page.keyboard.press("Control+z")
    wait_until(lambda: canvas.layer(flatten["layer_id"]) is None and canvas.layer(img2img["layer_id"]) is None,
               message="one undo takes both")  # fmt: skip


def test_the_generation_frame_survives_a_reload_of_the_page(pages, server):
    canvas = Canvas(server, "Frame kept")
    canvas.txt2img("ground", "a field", width=128, height=64)
    canvas.wait_rendered("ground")
    page, _ = open_capturing(pages, canvas, zoom=1)
    page.evaluate("window.opendream.mask.frames.set({x: 64, y: 0, width: 64, height: 64})")
    page.reload()
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    assert page.evaluate("window.opendream.mask.frames.frame") == {"x": 64, "y": 0, "width": 64, "height": 64}
    page.evaluate("window.opendream.mask.frames.clear()")
    page.reload()
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    assert page.evaluate("window.opendream.mask.frames.frame") is None
