"""The provenance view (the right panel's Graph tab): the layer DAG drawn as nodes and edges; hovering a node marks
what re-renders when it changes, "What does deleting take?" and a hovered delete button mark what a delete takes
with it, and the delete dialog names the same layers; selecting works both ways and from the keyboard."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.support import SMALL, Canvas, open_editor, row

pytestmark = pytest.mark.slow


def add(canvas: Canvas, layer_id: str, operation: str, name: str, params: dict) -> None:
    canvas.command(
        {"type": "add_layer", "layer_id": layer_id, "operation": operation, "name": name, "params": params, "seed": 5}
    )


def harbour(server) -> Canvas:
    """sea (txt2img) → dusk (img2img) → boat (inpaint of dusk through a mask on it); fog, another img2img of sea;
    moon, made from nothing."""
    canvas = Canvas(server, "Provenance")
    add(canvas, "sea", "txt2img", "Sea", {"prompt": "a calm sea", **SMALL})
    add(canvas, "dusk", "img2img", "Dusk", {"source": "sea", "prompt": "the sea at dusk", "steps": 2})
    add(
        canvas,
        "mask",
        "mask",
        "Boat mask",
        {"layer": "dusk", "strokes": [{"points": [[10, 10], [40, 40]], "radius": 6}]},
    )
    add(canvas, "boat", "inpaint", "Boat", {"source": "dusk", "mask": "mask", "prompt": "a boat", "steps": 2})
    add(canvas, "fog", "img2img", "Fog", {"source": "sea", "prompt": "the sea in fog", "steps": 2})
    add(canvas, "moon", "txt2img", "Moon", {"prompt": "a full moon", **SMALL})
    canvas.wait_rendered("sea", "dusk", "mask", "boat", "fog", "moon", timeout=120)
    return canvas


def node(page, layer_id: str):
    return page.locator(f"[data-testid=prov-node][data-layer-id='{layer_id}']")


def marked(page, cls: str) -> list[str]:
    return sorted(page.eval_on_selector_all(f"[data-testid=prov-node].{cls}", "els => els.map(e => e.dataset.layerId)"))


def test_the_graph_marks_what_a_change_re_renders_and_what_a_delete_takes(pages, server, shoot):
    canvas = harbour(server)
    page = open_editor(pages, canvas.path)
    page.click("[data-testid=tab-graph]")
    expect(page.locator("[data-testid=tab-graph]")).to_have_attribute("aria-selected", "true")
    expect(page.locator("[data-testid=prov-node]")).to_have_count(6)
    expect(page.locator(".prov-edge")).to_have_count(5)  # the inpaint reads dusk as source and through the mask
    for layer_id in ("sea", "dusk", "boat", "moon"):
        expect(node(page, layer_id).locator("img")).to_be_visible()  # rendered: a thumbnail
        expect(node(page, layer_id)).to_have_attribute("data-status", "rendered")

    # rows by depth: sea and moon on top, dusk and fog under sea, the mask, then the boat
    tops = {i: node(page, i).bounding_box()["y"] for i in ("sea", "moon", "dusk", "fog", "mask", "boat")}
    assert tops["sea"] == tops["moon"] < tops["dusk"] == tops["fog"] < tops["mask"] < tops["boat"]
    shoot(page, "provenance-01-graph")

    # hovering the root marks everything made from it, and nothing else
    node(page, "sea").hover()
    expect(node(page, "sea")).to_have_class(re.compile(r"\bsource\b"))
    assert marked(page, "affected") == ["boat", "dusk", "fog", "mask"]
    expect(node(page, "moon")).to_have_class(re.compile(r"\bdimmed\b"))
    expect(node(page, "moon")).not_to_have_class(re.compile(r"\baffected\b"))
    expect(page.locator("[data-testid=prov-caption]")).to_contain_text("re-renders it and 4 layers made from it")
    shoot(page, "provenance-02-hover-root")

    # a node in the middle: only what is below it
    node(page, "dusk").hover()
    assert marked(page, "affected") == ["boat", "mask"]
    expect(node(page, "fog")).to_have_class(re.compile(r"\bdimmed\b"))

    # clicking a node selects the layer (and the Layers panel says so)
    node(page, "dusk").click()
    expect(node(page, "dusk")).to_have_class(re.compile(r"\bselected\b"))
    expect(node(page, "dusk")).to_have_attribute("aria-current", "true")
    page.mouse.move(5, 5)
    assert page.evaluate("window.opendream.selected") == "dusk"

    # what deleting the selected layer takes: marked red, said in words
    page.click("[data-testid=prov-delete-preview]")
    assert marked(page, "doomed") == ["boat", "dusk", "mask"]
    assert marked(page, "affected") == []
    expect(page.locator("[data-testid=prov-caption]")).to_have_text(
        "Deleting “Dusk” also deletes 2 layers made from it: “Boat” and “Boat mask”."
    )
    shoot(page, "provenance-03-what-a-delete-takes")
    page.keyboard.press("Escape")  # ends the preview
    assert marked(page, "doomed") == []

    page.click("[data-testid=tab-layers]")
    expect(row(page, "dusk")).to_have_attribute("aria-selected", "true")
    expect(row(page, "sea")).to_have_attribute("aria-selected", "false")

    # the reverse: a layer selected in the Layers panel is the highlighted node
    row(page, "moon").click()
    page.click("[data-testid=tab-graph]")
    expect(node(page, "moon")).to_have_class(re.compile(r"\bselected\b"))
    expect(node(page, "dusk")).not_to_have_class(re.compile(r"\bselected\b"))


def test_a_hovered_delete_button_marks_what_goes_and_the_dialog_names_it(pages, server, shoot):
    canvas = harbour(server)
    page = open_editor(pages, canvas.path)
    target = row(page, "sea")
    target.hover()
    target.locator("[data-testid=delete-layer]").hover()
    doomed = sorted(page.eval_on_selector_all(".layer-row.prov-doomed", "els => els.map(e => e.dataset.layerId)"))
    assert doomed == ["boat", "dusk", "fog", "mask", "sea"]
    shoot(page, "provenance-04-delete-button-hovered")
    page.mouse.move(5, 5)
    expect(page.locator(".layer-row.prov-doomed")).to_have_count(0)

    # the dialog names what goes (the same function marks the graph)
    row(page, "dusk").hover()
    row(page, "dusk").locator("[data-testid=delete-layer]").click()
    dialog = page.locator("[data-testid=confirm-delete]")
    expect(dialog).to_contain_text("Delete “Dusk” and 2 more?")
    names = dialog.locator("[data-testid=dependents] li")
    expect(names).to_have_count(2)
    assert sorted(names.evaluate_all("els => els.map(e => e.dataset.layerId)")) == ["boat", "mask"]
    expect(dialog.locator("[data-testid=dependents]")).to_contain_text("Boat mask")
    shoot(page, "provenance-05-delete-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)

    # from the graph too: the preview, then Delete… opens the same dialog
    page.click("[data-testid=tab-graph]")
    node(page, "fog").click()
    page.click("[data-testid=prov-delete-preview]")
    page.click("[data-testid=prov-delete]")
    expect(dialog).to_contain_text("Delete “Fog”?")
    dialog.locator("[data-testid=confirm-ok]").click()
    expect(node(page, "fog")).to_have_count(0)
    expect(page.locator("[data-testid=prov-node]")).to_have_count(5)


def test_the_graph_works_from_the_keyboard(pages, server):
    canvas = harbour(server)
    page = open_editor(pages, canvas.path)
    page.click("[data-testid=tab-graph]")
    # one tab stop for the graph: Tab from the tab bar lands on a node, and only one node is in the tab order
    expect(page.locator("[data-testid=prov-node][tabindex='0']")).to_have_count(1)
    node(page, "sea").focus()
    # focus marks like hover does
    assert marked(page, "affected") == ["boat", "dusk", "fog", "mask"]
    page.keyboard.press("ArrowDown")
    expect(node(page, "dusk")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(node(page, "mask")).to_be_focused()
    page.keyboard.press("Enter")
    expect(node(page, "mask")).to_have_class(re.compile(r"\bselected\b"))
    assert page.evaluate("window.opendream.selected") == "mask"
    page.keyboard.press("ArrowUp")
    expect(node(page, "dusk")).to_be_focused()
    assert marked(page, "affected") == ["boat", "mask"]
    expect(page.locator("[data-testid=prov-node][tabindex='0']")).to_have_count(1)
    expect(node(page, "dusk")).to_have_attribute("tabindex", "0")


def test_a_bigger_canvas_draws_without_overlaps_and_scrolls(pages, server, shoot):
    canvas = Canvas(server, "Provenance, bigger")
    add(canvas, "r0", "txt2img", "Harbour", {"prompt": "a harbour", **SMALL})
    add(canvas, "r1", "txt2img", "Lighthouse", {"prompt": "a lighthouse", **SMALL})
    parents = {"a": "r0", "b": "r0", "c": "r0", "d": "a", "e": "a", "f": "d", "g": "r1", "h": "g", "i": "h", "j": "b"}
    for layer_id, source in parents.items():
        add(canvas, layer_id, "img2img", f"Study {layer_id.upper()}", {"source": source, "prompt": "again", "steps": 2})
    add(canvas, "m", "mask", "Sky mask", {"layer": "e", "strokes": [{"points": [[5, 5], [30, 30]], "radius": 4}]})
    add(canvas, "p", "inpaint", "Gulls", {"source": "f", "mask": "m", "prompt": "gulls", "steps": 2})
    page = open_editor(pages, canvas.path)
    page.click("[data-testid=tab-graph]")
    expect(page.locator("[data-testid=prov-node]")).to_have_count(14)
    # three tabs fit the panel with a two-digit count: opening one never pushes the page sideways
    assert page.evaluate(
        "(() => { const t = document.querySelector('.sidebar-right .tabs'); return t.scrollWidth <= t.clientWidth; })()"
    )
    assert page.evaluate("window.scrollX") == 0
    expect(page.locator(".prov-edge")).to_have_count(13)
    boxes = page.eval_on_selector_all(
        "[data-testid=prov-node]",
        "els => els.map(e => ({id: e.dataset.layerId, x: e.offsetLeft, y: e.offsetTop, w: e.offsetWidth, h: e.offsetHeight}))",
    )
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, f"{a['id']} overlaps {b['id']}"
    node(page, "a").hover()
    assert marked(page, "affected") == ["d", "e", "f", "m", "p"]
    shoot(page, "provenance-06-bigger")
    # the panel scrolls to a node selected elsewhere
    page.evaluate("window.opendream.select('p')")
    expect(node(page, "p")).to_have_class(re.compile(r"\bselected\b"))
    expect(node(page, "p")).to_be_in_viewport()
