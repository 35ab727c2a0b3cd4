"""The editor in headless Chromium against a real server: the canvas list, forms generated from the operations'
schemas, rendering, the layer panel, mask painting and inpainting, deleting with dependents, uploads, cancel
and retry."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.support import (
    Canvas,
    open_editor,
    png_bytes,
    row,
    rows,
    set_range,
    stage_centre,
    stage_pixel,
    wait_until,
)

pytestmark = pytest.mark.slow
CHECKER = ([0x3A, 0x3B, 0x41], [0x45, 0x46, 0x4D])


def test_create_a_canvas_and_generate_a_layer_from_the_form(pages, server, shoot):
    Canvas(server, "Lighthouse study")  # so the list is not empty
    page = pages.new("/")
    expect(page.locator("[data-testid=canvas-card]").first).to_be_visible()
    shoot(page, "01-canvas-list")

    page.click("[data-testid=new-canvas]")
    dialog = page.locator("[data-testid=new-canvas-dialog]")
    dialog.locator("input").fill("Harbour at dawn")
    dialog.locator("button[type=submit]").click()
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    canvas_id = re.search(r"canvas=([^&]+)", page.url).group(1)
    expect(page.locator("[data-testid=role]")).to_have_text("Owner")
    expect(page.locator("[data-testid=canvas-name]")).to_have_value("Harbour at dawn")
    expect(page.locator("[data-testid=stage-empty]")).to_be_visible()
    shoot(page, "02-editor-empty")

    # the form comes from txt2img's JSON Schema: a text area, sliders with their bounds, a select, a seed
    form = page.locator(".op-form[data-operation=txt2img]")
    expect(form.locator("[data-field=prompt] textarea")).to_be_visible()
    expect(form.locator("[data-field=width] input[type=range]")).to_have_attribute("max", "2048")
    expect(form.locator("[data-field=width] input[type=range]")).to_have_attribute("step", "8")
    expect(form.locator("[data-field=scheduler] select option")).to_have_count(7)
    form.locator("[data-field=prompt] textarea").fill("a harbour at dawn, oil on canvas")
    form.locator("[data-field=width] input[type=number]").fill("96")
    form.locator("[data-field=height] input[type=number]").fill("64")
    form.locator("[data-field=steps] input[type=number]").fill("3")
    form.locator("[data-field=scheduler] select").select_option("euler")
    form.locator("[data-testid=dice]").click()
    seed = int(form.locator("[data-field=seed] input").input_value())

    # a bad value is caught before it is sent, next to its field
    form.locator("[data-field=width] input[type=number]").fill("100")
    page.click("[data-testid=generate]")
    expect(form.locator("[data-field=width] .field-error")).to_have_text("A multiple of 8")
    form.locator("[data-field=width] input[type=number]").fill("96")
    page.click("[data-testid=generate]")

    layer = rows(page).first
    expect(rows(page)).to_have_count(1)
    expect(layer).to_have_attribute("data-status", "rendered", timeout=60_000)
    expect(layer.locator(".layer-thumb img")).to_have_js_property("complete", True)
    state = Canvas.__new__(Canvas)
    http = server.client()
    state = http.get(f"/api/canvases/{canvas_id}/state").json()
    [made] = state["layers"]
    assert made["operation"] == "txt2img"
    assert made["seed"] == seed
    assert {k: made["params"][k] for k in ("prompt", "width", "height", "steps", "scheduler")} == {
        "prompt": "a harbour at dawn, oil on canvas",
        "width": 96,
        "height": 64,
        "steps": 3,
        "scheduler": "euler",
    }
    # the picture is on the stage, not just the checkerboard behind it
    wait_until(
        lambda: stage_pixel(page)[3] == 255 and stage_pixel(page)[:3] not in CHECKER,
        10,
        message="the layer drawn on the stage",
    )

    # unavailable operations are listed, disabled, with the reason
    page.click("[data-testid=op-picker]")
    segment = page.locator("[data-testid=op-menu] [data-op=segment]")
    expect(segment).to_be_disabled()
    expect(segment).to_contain_text("SAM")
    shoot(page, "03-operation-menu")
    page.keyboard.press("Escape")
    page.locator("[data-testid=op-picker]").click()  # closes it

    # selecting the layer shows its params in the same form; changing them re-renders it (change_params)
    layer.click()
    expect(page.locator("[data-testid=tab-layer]")).to_have_class(re.compile("active"))
    props = page.locator("[data-testid=left-panel] .op-form")
    expect(props.locator("[data-field=prompt] textarea")).to_have_value("a harbour at dawn, oil on canvas")
    expect(page.locator("[data-testid=apply]")).to_be_disabled()
    props.locator("[data-field=prompt] textarea").fill("a harbour at dusk")
    page.click("[data-testid=apply]")
    wait_until(
        lambda: http.get(f"/api/canvases/{canvas_id}/state").json()["layers"][0]["revision"] == 2,
        message="a new revision",
    )
    expect(layer).to_have_attribute("data-status", "rendered", timeout=60_000)
    assert http.get(f"/api/canvases/{canvas_id}/state").json()["layers"][0]["params"]["prompt"] == "a harbour at dusk"

    # zoom: the buttons and the fit
    label = page.locator("[data-testid=zoom-label]")
    before = label.inner_text()
    page.click("[data-testid=zoom-in]")
    expect(label).not_to_have_text(before)
    page.click("[data-testid=zoom-fit]")
    expect(label).to_have_text(before)
    shoot(page, "04-editor-layer")


def test_layer_panel_visibility_opacity_rename_reorder_and_undo(pages, server, shoot):
    canvas = Canvas(server, "Layer panel")
    canvas.txt2img("bottom", "sand")
    canvas.txt2img("top", "sky", width=96)
    canvas.wait_rendered("bottom", "top")
    page = open_editor(pages, canvas.path)
    expect(rows(page)).to_have_count(2)
    assert rows(page).evaluate_all("rs => rs.map(r => r.dataset.layerId)") == [
        "top",
        "bottom",
    ]  # top of the stack first

    # visibility
    row(page, "top").locator("[data-testid=toggle-visible]").click()
    wait_until(lambda: canvas.layer("top")["visible"] is False, message="the layer hidden")
    expect(row(page, "top")).to_have_class(re.compile("hidden-layer"))
    # undo / redo from the keyboard (the server keeps per-user history)
    expect(page.locator("[data-testid=undo]")).to_be_enabled()
    page.keyboard.press("Control+z")
    wait_until(lambda: canvas.layer("top")["visible"] is True, message="undo")
    page.keyboard.press("Control+Shift+z")
    wait_until(lambda: canvas.layer("top")["visible"] is False, message="redo")
    page.click("[data-testid=undo]")
    wait_until(lambda: canvas.layer("top")["visible"] is True, message="undo by the button")

    # opacity: the slider of the selected layer
    row(page, "bottom").click()
    slider = row(page, "bottom").locator("input[type=range]")
    expect(slider).to_be_visible()
    set_range(slider, 40)
    wait_until(lambda: abs(canvas.layer("bottom")["opacity"] - 0.4) < 1e-9, message="opacity 40%")
    expect(row(page, "bottom").locator(".opacity-value")).to_have_text("40%")

    # rename by double-click
    row(page, "top").locator(".layer-name").dblclick()
    name_input = row(page, "top").locator(".layer-name-input")
    name_input.fill("Sky")
    name_input.press("Enter")
    wait_until(lambda: canvas.layer("top")["name"] == "Sky", message="the rename")
    expect(row(page, "top").locator(".layer-name")).to_have_text("Sky")

    # drag "bottom" above "top"
    source = row(page, "bottom").locator(".layer-grip").bounding_box()
    target = row(page, "top").bounding_box()
    page.mouse.move(source["x"] + 5, source["y"] + 5)
    page.mouse.down()
    page.mouse.move(source["x"] + 5, target["y"] + 10, steps=6)
    page.mouse.move(source["x"] + 5, target["y"] + 4, steps=2)
    page.mouse.up()
    wait_until(lambda: canvas.state()["order"] == ["top", "bottom"], message="the move")
    expect(rows(page).first).to_have_attribute("data-layer-id", "bottom")
    moved = [e for e in canvas.events() if e["type"] == "layer.moved"]
    assert moved[-1]["payload"] == {"layer_id": "bottom", "index": 1}


def test_paint_a_mask_and_inpaint_it(pages, server, shoot):
    canvas = Canvas(server, "Mask and inpaint")
    canvas.txt2img("base", "a quiet bay")
    canvas.wait_rendered("base")
    page = open_editor(pages, canvas.path)
    row(page, "base").click()
    page.click("[data-testid=tool-brush]")
    bar = page.locator("[data-testid=mask-bar]")
    expect(bar).to_contain_text("Mask on “Text to image 1”")
    set_range(page.locator("[data-testid=brush-size]"), 4)
    x, y = stage_centre(page)
    page.mouse.move(x - 60, y - 40)
    page.mouse.down()
    page.mouse.move(x + 60, y + 40, steps=12)
    page.mouse.up()
    expect(bar).to_contain_text("1 stroke")
    # erase a little of it, then undo that stroke
    page.click("[data-testid=tool-eraser]")
    page.mouse.move(x - 10, y)
    page.mouse.down()
    page.mouse.move(x + 10, y, steps=4)
    page.mouse.up()
    expect(bar).to_contain_text("2 strokes")
    page.click("[data-testid=mask-undo-stroke]")
    expect(bar).to_contain_text("1 stroke")
    page.click("[data-testid=tool-brush]")
    page.mouse.move(x + 40, y - 40)
    page.mouse.down()
    page.mouse.move(x + 50, y - 30, steps=3)
    page.mouse.up()
    expect(bar).to_contain_text("2 strokes")
    shoot(page, "05-mask-painting")
    page.click("[data-testid=mask-save]")

    expect(rows(page)).to_have_count(2)
    mask_row = rows(page).first
    mask_id = mask_row.get_attribute("data-layer-id")
    expect(mask_row).to_have_attribute("data-status", "rendered", timeout=30_000)
    mask = canvas.layer(mask_id)
    assert mask["operation"] == "mask" and mask["parents"] == ["base"]
    strokes = mask["params"]["strokes"]
    assert len(strokes) == 2 and strokes[0]["radius"] == 4 and len(strokes[0]["points"]) > 2
    xs = [p[0] for p in strokes[0]["points"]]
    assert 0 <= min(xs) < max(xs) <= 64  # image pixels, not screen pixels

    # from the mask to an inpaint: source and mask filled in
    page.click("[data-testid=inpaint-with-mask]")
    form = page.locator(".op-form[data-operation=inpaint]")
    expect(form.locator("[data-field=source] .pick-tile.selected")).to_have_attribute("data-layer-id", "base")
    expect(form.locator("[data-field=mask] .pick-tile.selected")).to_have_attribute("data-layer-id", mask_id)
    form.locator("[data-field=prompt] textarea").fill("a red boat")
    form.locator("[data-field=steps] input[type=number]").fill("2")
    page.click("[data-testid=generate]")
    expect(rows(page)).to_have_count(3)
    inpainted = rows(page).first
    expect(inpainted).to_have_attribute("data-status", "rendered", timeout=60_000)
    layer = canvas.layer(inpainted.get_attribute("data-layer-id"))
    assert layer["operation"] == "inpaint" and sorted(layer["parents"]) == sorted(["base", mask_id])
    shoot(page, "06-inpainted")

    # a mask layer selected with the brush: more strokes go into the same layer (change_params)
    row(page, mask_id).click()
    page.click("[data-testid=tool-brush]")
    expect(bar).to_contain_text("Editing")
    page.mouse.move(x - 30, y + 30)
    page.mouse.down()
    page.mouse.move(x - 20, y + 40, steps=3)
    page.mouse.up()
    page.click("[data-testid=mask-save]")
    wait_until(lambda: len(canvas.layer(mask_id)["params"]["strokes"]) == 3, message="the mask updated")
    expect(rows(page)).to_have_count(3)


def test_delete_shows_the_layers_made_from_it_before_deleting_them(pages, server, shoot):
    canvas = Canvas(server, "Delete with dependents")
    canvas.txt2img("base", "a field")
    canvas.mask("m", on="base")
    canvas.inpaint("fix", source="base", mask="m")
    canvas.txt2img("other", "a cloud", width=96)
    canvas.wait_rendered("base", "m", "fix", "other")
    page = open_editor(pages, canvas.path)
    expect(rows(page)).to_have_count(4)

    # deleting a leaf asks without listing anything, and can be cancelled
    row(page, "other").hover()
    row(page, "other").locator("[data-testid=delete-layer]").click()
    dialog = page.locator("[data-testid=confirm-delete]")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-testid=dependents]")).to_have_count(0)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)

    row(page, "base").hover()
    row(page, "base").locator("[data-testid=delete-layer]").click()
    expect(dialog).to_contain_text("Delete “Text to image 1” and 2 more?")
    listed = dialog.locator("[data-testid=dependents] li")
    expect(listed).to_have_count(2)
    assert sorted(listed.evaluate_all("items => items.map(i => i.dataset.layerId)")) == ["fix", "m"]
    shoot(page, "07-delete-cascade")
    dialog.locator("[data-testid=confirm-ok]").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-layer-id", "other")
    assert canvas.state()["order"] == ["other"]

    # and undo brings all three back
    page.keyboard.press("Control+z")
    expect(rows(page)).to_have_count(4)


def test_upload_by_picker_and_by_drop_then_download(pages, server, tmp_path):
    canvas = Canvas(server, "Uploads")
    page = open_editor(pages, canvas.path)
    picture = tmp_path / "harbour.png"
    picture.write_bytes(png_bytes(48, 32))
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=upload]")
    chooser.value.set_files(str(picture))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first.locator(".layer-name")).to_have_text("harbour")
    expect(rows(page).first).to_have_attribute("data-status", "rendered", timeout=30_000)
    [layer] = canvas.state()["layers"]
    assert layer["operation"] == "upload" and (layer["output"]["width"], layer["output"]["height"]) == (48, 32)

    # drag and drop onto the canvas
    data = list(png_bytes(20, 20, (250, 200, 40)))
    page.evaluate(
        """(bytes) => {
            const file = new File([new Uint8Array(bytes)], 'sun.png', {type: 'image/png'});
            const dt = new DataTransfer();
            dt.items.add(file);
            const target = document.querySelector('.viewport');
            target.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));
            target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        data,
    )
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first.locator(".layer-name")).to_have_text("sun")

    # download a layer as PNG (with the workflow inside)
    first = rows(page).last
    first.hover()
    with page.expect_download() as download:
        first.locator("[data-testid=download-layer]").click()
    saved = tmp_path / "layer.png"
    download.value.save_as(saved)
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_cancel_and_retry(pages, server):
    canvas = Canvas(server, "Cancel")
    # slow enough to watch: 256 px, 150 steps
    canvas.command(
        {
            "type": "add_layer",
            "layer_id": "slow",
            "operation": "txt2img",
            "params": {"prompt": "slow", "width": 256, "height": 256, "steps": 150},
        }
    )
    page = open_editor(pages, canvas.path)
    slow = row(page, "slow")
    expect(slow).to_have_attribute("data-status", "rendering", timeout=30_000)
    expect(slow.locator(".meta-status")).to_contain_text(re.compile(r"Rendering \d+/150"))
    wait_until(
        lambda: slow.locator(".layer-progress-bar").evaluate("b => parseFloat(b.style.width) > 0"),
        20,
        message="the progress bar",
    )
    slow.locator("[data-testid=cancel-render]").click()
    # a cancellation is not a failure: labelled as what it is
    expect(slow).to_have_attribute("data-status", "cancelled", timeout=20_000)
    expect(slow.locator(".meta-status")).to_have_text("Cancelled")
    slow.locator("[data-testid=retry-render]").click()
    expect(slow).to_have_attribute("data-status", re.compile("pending|rendering"))
    wait_until(lambda: canvas.layer("slow")["revision"] == 2, message="a new revision")
    expect(slow).to_have_attribute("data-status", "rendering", timeout=30_000)
    slow.locator("[data-testid=cancel-render]").click()
    expect(slow).to_have_attribute("data-status", "cancelled", timeout=20_000)


def test_composite_form_with_layer_pickers_nested_in_a_list(pages, server):
    canvas = Canvas(server, "Composite")
    canvas.txt2img("back", "a wall")
    canvas.txt2img("front", "a window", width=96)
    canvas.wait_rendered("back", "front")
    page = open_editor(pages, canvas.path)
    page.click("[data-testid=op-picker]")
    page.click("[data-testid=op-menu] [data-op=composite]")
    form = page.locator(".op-form[data-operation=composite]")
    # starts with the visible layers, bottom first, each with its own picker, blend mode and opacity
    expect(form.locator(".list-item")).to_have_count(2)
    expect(form.locator("[data-field='layers.0.layer'] .pick-tile.selected")).to_have_attribute("data-layer-id", "back")
    expect(form.locator("[data-field='layers.1.layer'] .pick-tile.selected")).to_have_attribute(
        "data-layer-id", "front"
    )
    form.locator("[data-field='layers.1.blend_mode'] select").select_option("multiply")
    form.locator("[data-field='layers.1.opacity'] input[type=number]").fill("0.5")
    form.get_by_role("button", name="Add").click()
    expect(form.locator(".list-item")).to_have_count(3)
    page.click("[data-testid=generate]")  # the new item has no layer yet: refused next to it
    expect(form.locator("[data-field='layers.2.layer'] .field-error")).to_have_text("Pick a layer")
    form.locator("[data-field='layers.2.layer'] .pick-tile[data-layer-id=back]").click()
    form.locator("[data-field='layers.2.x'] input[type=number]").fill("16")
    page.click("[data-testid=generate]")
    expect(rows(page)).to_have_count(3)
    made = rows(page).first
    expect(made).to_have_attribute("data-status", "rendered", timeout=30_000)
    layer = canvas.layer(made.get_attribute("data-layer-id"))
    assert layer["operation"] == "composite"
    assert [(item["layer"], item["blend_mode"], item["opacity"], item["x"]) for item in layer["params"]["layers"]] == [
        ("back", "normal", 1.0, 0),
        ("front", "multiply", 0.5, 0),
        ("back", "normal", 1.0, 16),
    ]
    assert sorted(layer["parents"]) == ["back", "front"]
