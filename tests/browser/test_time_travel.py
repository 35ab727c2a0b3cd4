"""The history timeline in the browser: scrubbing shows past versions read-only; fork and restore from there;
workflows exported as JSON and PNG and imported as new canvases. Uses the time-travel and workflow endpoints
(POST …/fork, POST …/restore, GET …/workflow, GET …/composite.png, POST /api/workflows)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.support import Canvas, open_editor, row, rows, set_range, wait_until

pytestmark = pytest.mark.slow


def version_after(canvas: Canvas, event_type: str, layer_id: str) -> int:
    return next(
        e["seq"] for e in canvas.events() if e["type"] == event_type and e["payload"].get("layer_id") == layer_id
    )


def test_scrub_the_history_then_fork_from_a_past_version(pages, server, shoot):
    canvas = Canvas(server, "Time travel")
    canvas.txt2img("first", "dawn")
    canvas.wait_rendered("first")
    canvas.txt2img("second", "noon", width=96)
    canvas.wait_rendered("second")
    canvas.command({"type": "rename_layer", "layer_id": "second", "name": "Noon"})
    past = version_after(canvas, "layer.rendered", "first")
    head = canvas.state()["version"]
    page = open_editor(pages, canvas.path)
    expect(rows(page)).to_have_count(2)
    expect(page.locator("[data-testid=timeline-version]")).to_have_text(f"v{head}")

    slider = page.locator("[data-testid=timeline-slider]")
    set_range(slider, past)
    expect(page.locator("[data-testid=scrub-banner]")).to_contain_text(f"Viewing version {past} of {head}")
    expect(rows(page)).to_have_count(1)
    expect(row(page, "first")).to_have_attribute("data-status", "rendered")
    expect(page.locator("[data-testid=timeline-label]")).to_contain_text("Engine rendered")
    # read-only while scrubbing
    expect(page.locator("[data-testid=generate]")).to_be_disabled()
    expect(page.locator("[data-testid=undo]")).to_be_disabled()
    expect(row(page, "first").locator("[data-testid=toggle-visible]")).to_be_disabled()
    # the history list shows who did what, and jumps there too
    page.click("[data-testid=tab-history]")
    items = page.locator("[data-testid=history-list] li")
    expect(items.first).to_contain_text("renamed a layer to “Noon”")
    shoot(page, "12-history-scrub")
    page.locator(f"[data-testid=history-list] li[data-seq='{past - 1}']").click()  # the add of "first"
    expect(page.locator("[data-testid=scrub-banner]")).to_contain_text(f"Viewing version {past - 1}")
    # a version whose layer had not rendered yet: the picture its params made later, from the render cache
    page.click("[data-testid=tab-layers]")
    expect(row(page, "first").locator(".layer-thumb img")).to_be_visible(timeout=30_000)
    page.keyboard.press("Escape")
    expect(page.locator("[data-testid=scrub-banner]")).to_be_hidden()
    expect(rows(page)).to_have_count(2)

    # fork from the past version: a new canvas, owned by this browser
    set_range(slider, past)
    expect(rows(page)).to_have_count(1)
    page.click("[data-testid=fork]")
    page.wait_for_url(re.compile(r"canvas=(?!" + canvas.id + r")"))
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    expect(page.locator("[data-testid=role]")).to_have_text("Owner")
    expect(rows(page)).to_have_count(1)
    expect(row(page, "first")).to_be_visible()
    forked_id = re.search(r"canvas=([^&]+)", page.url).group(1)
    forked = server.client().get(f"/api/canvases/{forked_id}/state").json()
    assert forked["order"] == ["first"]
    assert forked["origin"]["canvas_id"] == canvas.id
    assert canvas.state()["order"] == ["first", "second"]  # the original is untouched


def test_restore_a_past_version_then_undo_it(pages, server):
    canvas = Canvas(server, "Restore")
    canvas.txt2img("keep", "kept")
    canvas.wait_rendered("keep")
    past = canvas.state()["version"]
    canvas.txt2img("drop", "dropped", width=96)
    canvas.command({"type": "set_opacity", "layer_id": "keep", "opacity": 0.3})
    page = open_editor(pages, canvas.path)
    expect(rows(page)).to_have_count(2)
    set_range(page.locator("[data-testid=timeline-slider]"), past)
    expect(rows(page)).to_have_count(1)
    page.click("[data-testid=restore]")
    page.locator("[data-testid=confirm-restore] [data-testid=confirm-ok]").click()
    expect(page.locator("[data-testid=scrub-banner]")).to_be_hidden()
    expect(rows(page)).to_have_count(1)
    wait_until(lambda: canvas.state()["order"] == ["keep"], message="the restore")
    assert canvas.layer("keep")["opacity"] == 1.0
    # restoring is an edit like any other: undo brings the newer work back
    page.keyboard.press("Control+z")
    expect(rows(page)).to_have_count(2)
    wait_until(lambda: canvas.state()["order"] == ["keep", "drop"], message="the undo")


def test_export_a_workflow_and_import_it_as_json_and_png(pages, server, tmp_path, shoot):
    canvas = Canvas(server, "Exported")
    canvas.txt2img("a", "a lighthouse")
    canvas.mask("m", on="a")
    canvas.wait_rendered("a", "m")
    canvas.command({"type": "rename_layer", "layer_id": "a", "name": "Lighthouse"})
    page = open_editor(pages, canvas.path)
    expect(rows(page)).to_have_count(2)

    page.click("[data-testid=export]")
    shoot(page, "13-export-menu")
    with page.expect_download() as download:
        page.click("[data-testid=export-json]")
    workflow_path = tmp_path / "workflow.json"
    download.value.save_as(workflow_path)
    document = json.loads(workflow_path.read_text())
    assert document["canvas"]["name"] == "Exported"

    page.click("[data-testid=export]")
    with page.expect_download() as download:
        page.click("[data-testid=export-png]")
    png_path = tmp_path / "canvas.png"
    download.value.save_as(png_path)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # import the JSON from the editor: a new canvas with the same layers
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=import]")
    chooser.value.set_files(str(workflow_path))
    page.wait_for_url(re.compile(r"canvas=(?!" + canvas.id + r")"))
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    expect(rows(page)).to_have_count(2)
    expect(row(page, "a").locator(".layer-name")).to_have_text("Lighthouse")
    expect(page.locator("[data-testid=role]")).to_have_text("Owner")

    # import the PNG from the canvas list
    page.goto("/")
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=import-workflow]")
    chooser.value.set_files(str(png_path))
    page.wait_for_url(re.compile(r"canvas="))
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    expect(rows(page)).to_have_count(2)
    expect(row(page, "m")).to_be_visible()

    # a file that is not a workflow: a clear error, no navigation
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a workflow"}')
    before = page.url
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=import]")
    chooser.value.set_files(str(bad))
    expect(page.locator(".toast-error")).to_contain_text("Import failed")
    assert page.url == before
