"""History that feels like Figma (issue #19), in a real Chromium: a slider drag is one history step that one
Ctrl+Z takes back (with the slider still focused); a restore is one step, undoable at once from the button;
a named version is a labelled mark on everyone's timeline."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.support import Canvas, identity, open_editor, row, rows, set_range, wait_until

pytestmark = pytest.mark.slow


def opacity_events(canvas: Canvas) -> list[dict]:
    return [event for event in canvas.events() if event["type"] == "layer.opacity_changed"]


def test_a_slider_drag_is_one_step_and_one_ctrl_z_takes_it_back(pages, server, shoot):
    canvas = Canvas(server, "One gesture")
    canvas.txt2img("sky", "a sky")
    canvas.wait_rendered("sky")
    page = open_editor(pages, canvas.path, identity("Ada"))
    row(page, "sky").click()
    slider = row(page, "sky").locator("input[type=range]")
    expect(slider).to_be_visible()
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] - 2, y)
    page.mouse.down()
    for step in range(1, 13):  # a slow drag to the left, as a hand does it
        page.mouse.move(box["x"] + box["width"] * (1 - step / 13), y)
        page.wait_for_timeout(60)
    page.mouse.up()
    wait_until(lambda: len(opacity_events(canvas)) >= 3, message="the drag's commands")
    wait_until(lambda: canvas.layer("sky")["opacity"] < 0.3, message="the drag's end")
    ticks = opacity_events(canvas)
    assert len({event.get("gesture") for event in ticks}) == 1 and ticks[0].get("gesture"), ticks
    page.click("[data-testid=tab-history]")
    items = page.locator("[data-testid=history-list] li")
    expect(items.first).to_contain_text("set the opacity of")
    expect(items).to_have_count(3)  # the canvas made, the layer added, the whole drag
    shoot(page, "19-gesture-one-step")
    page.click("[data-testid=tab-layers]")
    slider.focus()  # the slider keeps the focus after a drag: Ctrl+Z must not be swallowed by it
    page.keyboard.press("Control+z")
    wait_until(lambda: canvas.layer("sky")["opacity"] == 1.0, message="one undo of the whole drag")
    page.click("[data-testid=tab-history]")
    expect(items.first).to_contain_text("undid: set the opacity of")
    shoot(page, "19-gesture-undone")


def test_a_restore_is_one_named_step_and_undo_is_there_at_once(pages, server, shoot):
    canvas = Canvas(server, "Restore step")
    canvas.txt2img("keep", "kept")
    canvas.wait_rendered("keep")
    past = canvas.state()["version"]
    canvas.txt2img("drop", "dropped", width=96)
    canvas.command({"type": "set_opacity", "layer_id": "keep", "opacity": 0.3})
    canvas.command({"type": "rename_layer", "layer_id": "keep", "name": "Kept"})
    page = open_editor(pages, canvas.path, identity("Ada"))
    expect(rows(page)).to_have_count(2)
    set_range(page.locator("[data-testid=timeline-slider]"), past)
    page.click("[data-testid=restore]")
    page.locator("[data-testid=confirm-restore] [data-testid=confirm-ok]").click()
    wait_until(lambda: canvas.state()["order"] == ["keep"], message="the restore")
    page.click("[data-testid=tab-history]")
    items = page.locator("[data-testid=history-list] li")
    expect(items.first).to_contain_text(f"restored version {past}")
    expect(page.locator("[data-testid=undo]")).to_be_enabled()
    shoot(page, "19-restore-one-step")
    page.click("[data-testid=undo]")
    wait_until(lambda: canvas.state()["order"] == ["keep", "drop"], message="the undo of the restore")
    assert canvas.layer("keep")["name"] == "Kept"


def test_a_named_version_is_a_mark_on_everyones_timeline(pages, server, shoot):
    canvas = Canvas(server, "Checkpoints")
    canvas.txt2img("a", "first")
    canvas.wait_rendered("a")
    named = canvas.state()["version"]
    canvas.command({"type": "rename_layer", "layer_id": "a", "name": "Later"})
    ada = open_editor(pages, canvas.path, identity("Ada"))
    grace = open_editor(pages, canvas.path, identity("Grace", "#e4572e"))
    set_range(ada.locator("[data-testid=timeline-slider]"), named)
    ada.click("[data-testid=name-version-button]")
    ada.fill("[data-testid=checkpoint-label]", "before the sky")
    ada.click("[data-testid=save-checkpoint]")
    wait_until(lambda: canvas.state()["checkpoints"] == [{"version": named, "label": "before the sky"}],
               message="the checkpoint")  # fmt: skip
    for page in (ada, grace):
        mark = page.locator("[data-testid=checkpoint-mark]")
        expect(mark).to_have_count(1)
        expect(mark).to_contain_text("before the sky")
        expect(mark).to_have_attribute("data-version", str(named))
    shoot(grace, "19-checkpoint-mark")
    grace.locator("[data-testid=checkpoint-mark]").click()
    expect(grace.locator("[data-testid=scrub-banner]")).to_contain_text(f"Viewing version {named}")
