"""Renders as the editor shows them (issue #12): live previews in the layer row and on the canvas while a layer
renders, the size a render from a large source will have ("resize to fit") and the server's limits in the form,
and past versions whose layers were never rendered: a note for everyone, "Render this version" for editors."""

from __future__ import annotations

import io
import math
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.support import Canvas, open_editor, row, rows, set_range, wait_until

pytestmark = pytest.mark.slow

SHOTS = "/tmp/shots"
TIMES = "\N{MULTIPLICATION SIGN}"  # as the client writes sizes


def shot(page, name: str) -> None:
    page.wait_for_timeout(150)  # let the last frame paint
    page.screenshot(path=f"{SHOTS}/{name}.png")


def fit(width: int, height: int, working_pixels: int) -> tuple[int, int]:
    """The server's "resize to fit" rule (as client/js/limits.js has it)."""
    if width * height <= working_pixels:
        return width, height
    s = math.sqrt(working_pixels / (width * height))
    return max(8, math.floor(width * s)), max(8, math.floor(height * s))


# Watches the page from the inside, every 30 ms: what the layer row's thumbnail showed, and whether the canvas
# drew a preview for the layer (its latest preview loaded, at the size the finished image will have).
WATCH = """(id) => {
    const seen = { thumbs: [], canvas: [] };
    window.__seen = seen;
    setInterval(() => {
        const src = document.querySelector(`[data-layer-id='${id}'] .layer-thumb img`)?.getAttribute('src') || '';
        const kind = src.startsWith('data:image/jpeg') ? 'preview' : /^[/]api[/]canvases[/][^/]+[/]blobs[/]/.test(src) ? 'final' : '';
        if (kind && seen.thumbs.at(-1) !== kind) seen.thumbs.push(kind);
        const p = window.opendream.viewport.previewOf(id);
        if (p) seen.canvas.push([p.width, p.height, p.img.naturalWidth]);
    }, 30);
}"""


def test_a_render_shows_previews_in_its_row_and_on_the_canvas_then_the_final_image(pages, server):
    canvas = Canvas(server, "Previews")
    page = open_editor(pages, canvas.path)
    page.evaluate(WATCH, "big")
    canvas.txt2img("big", "a harbour at dawn", width=512, height=512, steps=16)
    big = row(page, "big")
    wait_until(lambda: page.evaluate("window.__seen.thumbs.includes('preview')"), 60, message="a preview in the row")
    expect(big).to_have_attribute("data-status", "rendering")
    shot(page, "renders-1-preview")
    canvas.wait_rendered("big", timeout=120)
    sha = canvas.layer("big")["output"]["sha256"]
    # images come under the canvas's access: its own blob route, with the editor's token
    expect(big.locator(".layer-thumb img")).to_have_attribute(
        "src", re.compile(rf"^/api/canvases/{canvas.id}/blobs/{sha}[?]token=.+$")
    )
    expect(big).to_have_attribute("data-status", "rendered")
    seen = page.evaluate("window.__seen")
    assert seen["thumbs"][0] == "preview" and seen["thumbs"][-1] == "final", seen["thumbs"]
    # the canvas drew the preview where the finished image goes, scaled to its size, from a small picture
    assert seen["canvas"], "the canvas never drew a preview"
    width, height, natural = seen["canvas"][-1]
    assert (width, height) == (512, 512)
    assert 0 < natural <= 256
    # then the real image, and the preview is gone for good
    wait_until(
        lambda: page.evaluate(
            """(sha) => window.opendream.viewport.previews.size === 0
                && window.opendream.session.previews.size === 0
                && window.opendream.viewport.cache.get(sha).loaded""",
            sha,
        ),
        10,
        message="the final image on the canvas",
    )
    expect(page.locator("[data-testid=render-pill]")).to_be_hidden()
    shot(page, "renders-2-final")

    # a canvas the worker has set aside: a notice that says why and counts down to the retry
    page.evaluate(
        "() => window.opendream.session.handle({type: 'render_blocked', reason: 'this canvas cannot be scheduled: "
        "TypeError: bad payload', attempts: 1, since: 0, retry_in_s: 30})"
    )
    notice = page.locator("[data-testid=render-blocked]")
    expect(notice).to_contain_text(
        re.compile(r"Rendering is paused for this canvas: this canvas cannot be scheduled: .* — retrying in \d+ s")
    )
    shot(page, "renders-2b-blocked")
    page.evaluate("() => window.opendream.session.handle({type: 'render_unblocked'})")
    expect(notice).to_be_hidden()


def test_img2img_on_a_large_upload_shows_the_size_it_renders_at(pages, server):
    canvas = Canvas(server, "Large source")
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000), (40, 110, 180)).save(buffer, format="PNG")
    blob = canvas.http.post(f"/api/blobs?canvas={canvas.id}", content=buffer.getvalue(),
                            headers={"content-type": "image/png"})  # fmt: skip
    assert blob.status_code == 201, blob.text
    canvas.command(
        {
            "type": "add_layer",
            "layer_id": "photo",
            "operation": "upload",
            "params": {"blob": blob.json()["sha256"]},
            "name": "Photo",
        }
    )
    canvas.wait_rendered("photo")
    catalogue = canvas.http.get("/api/operations").json()
    limits = catalogue["limits"]
    img2img = next(op for op in catalogue["operations"] if op["name"] == "img2img")
    assert img2img["params_schema"]["properties"]["resize"]["default"] == "fit"

    page = open_editor(pages, canvas.path)
    row(page, "photo").click()
    page.click("[data-testid=tab-new]")
    page.click("[data-testid=op-picker]")
    page.click("[data-testid=op-menu] [data-op=img2img]")
    form = page.locator(".op-form[data-operation=img2img]")
    expect(form.locator("[data-field=source] .pick-tile.selected")).to_have_attribute("data-layer-id", "photo")
    estimate = page.locator("[data-testid=render-estimate]")
    width, height = fit(3000, 2000, limits["working_pixels"])
    expect(estimate).to_contain_text(
        re.compile(rf"Renders at {width}{TIMES}{height} · .* — source 3000{TIMES}2000 resized to fit")
    )
    expect(estimate.locator("[data-testid=limit-warning]")).to_have_count(0)
    form.locator("[data-field=prompt] textarea").fill("a harbour in autumn")
    form.locator("[data-field=steps] input[type=number]").fill("4")
    shot(page, "renders-3-img2img-fit")

    # the source's full size: the form says so, and warns when a limit would refuse it
    form.locator("[data-field=resize] select").select_option("none")
    expect(estimate).to_contain_text(f"Renders at 3000{TIMES}2000")
    pixels = 3000 * 2000
    over = pixels > limits["max_pixels"] or pixels * math.floor(4 * 0.6) > limits["max_work"]
    if over:
        expect(estimate.locator("[data-testid=limit-warning]").first).to_contain_text(
            re.compile(r"max_pixels|max_work")
        )
        shot(page, "renders-4-img2img-over-limit")
        page.click("[data-testid=generate]")
        # refused by the server, which names the limit: shown as rejections are
        expect(page.locator(".toast-error").last).to_contain_text(re.compile(r"max_pixels|max_work|limit", re.I))
        shot(page, "renders-4b-img2img-refused")
        expect(rows(page)).to_have_count(1)

    # resized to fit: accepted, and rendered at the size the form said
    form.locator("[data-field=resize] select").select_option("fit")
    expect(estimate).to_contain_text("resized to fit")
    page.click("[data-testid=generate]")
    expect(rows(page)).to_have_count(2)
    made = rows(page).first
    made_id = made.get_attribute("data-layer-id")
    state = canvas.wait_rendered(made_id, timeout=120)
    output = next(layer for layer in state["layers"] if layer["id"] == made_id)["output"]
    assert (output["width"], output["height"]) == (width, height)


def test_a_past_version_never_rendered_says_so_and_an_editor_can_render_it(pages, server):
    # Keep the worker busy on another canvas while this one's layer changes twice: its first params are
    # never rendered, so the version that had them has no picture for it.
    blocker = Canvas(server, "Busy elsewhere")
    blocker.txt2img("slow", "slow", width=512, height=512, steps=60)
    wait_until(
        lambda: any(
            item.get("rendering") for item in blocker.http.get(f"/api/canvases/{blocker.id}/renders").json()["queue"]
        ),
        60,
        message="the other canvas to be rendering",
    )
    canvas = Canvas(server, "Never rendered")
    canvas.txt2img("sky", "a red sky")
    past = canvas.state()["version"]
    canvas.command(
        {
            "type": "change_params",
            "layer_id": "sky",
            "params": {"prompt": "a blue sky", "width": 64, "height": 64, "steps": 2},
        }
    )
    # meanwhile the editor says why the layer waits, and the pill too
    page = open_editor(pages, canvas.path)
    waiting = row(page, "sky").locator("[data-testid=layer-status]")
    expect(waiting).to_contain_text(re.compile(r"^Waiting: behind \d+ renders? on other canvases"))
    expect(page.locator("[data-testid=render-pill]")).to_contain_text(
        re.compile(r"behind \d+ renders? on other canvases")
    )
    shot(page, "renders-0-waiting")
    assert blocker.http.post(f"/api/canvases/{blocker.id}/layers/slow/cancel").status_code in (200, 202, 204)
    canvas.wait_rendered("sky", timeout=60)
    images = canvas.http.get(f"/api/canvases/{canvas.id}/images?version={past}").json()
    assert images["images"]["sky"]["sha256"] is None, images
    assert images["missing"] == 1

    # a viewer: the note, no spinner, no way to make the server compute
    viewer = open_editor(pages, canvas.share("viewer")["path"])
    expect(rows(viewer)).to_have_count(1)
    set_range(viewer.locator("[data-testid=timeline-slider]"), past)
    sky = row(viewer, "sky")
    expect(sky.locator("[data-testid=layer-status]")).to_have_text("Not rendered at this version")
    expect(sky).to_have_attribute("data-status", "missing")
    expect(sky.locator(".spinner")).to_have_count(0)
    expect(viewer.locator("[data-testid=past-missing]")).to_contain_text("not rendered at this version")
    expect(viewer.locator("[data-testid=render-version]")).to_be_hidden()
    shot(viewer, "renders-5-past-viewer")
    assert canvas.http.get(f"/api/canvases/{canvas.id}/images?version={past}").json()["missing"] == 1

    # an editor: "Render this version" renders it, then shows it
    set_range(page.locator("[data-testid=timeline-slider]"), past)
    sky = row(page, "sky")
    expect(sky.locator("[data-testid=layer-status]")).to_have_text("Not rendered at this version")
    render = page.locator("[data-testid=render-version]")
    expect(render).to_be_visible()
    shot(page, "renders-6-past-editor")
    render.click()
    expect(sky.locator(".layer-thumb img")).to_have_attribute(
        "src", re.compile(r"^/api/canvases/[^/]+/blobs/[0-9a-f]{64}[?]token=.+$"), timeout=60_000
    )
    expect(sky.locator("[data-testid=layer-status]")).to_have_count(0)
    expect(render).to_be_hidden()
    expect(page.locator("[data-testid=past-missing]")).to_have_count(0)
    shot(page, "renders-7-past-rendered")
    after = canvas.http.get(f"/api/canvases/{canvas.id}/images?version={past}").json()
    assert after["images"]["sky"]["sha256"] and after["missing"] == 0
