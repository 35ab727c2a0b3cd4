"""Issue #19's smaller items in the browser: uploads refused before sending (too large, wrong type, dropped on
the canvas), the prompt's counter, limit message and approximate tokens, scheduler labels, and home cards
that show each canvas's composite."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.support import Canvas, open_editor, png_bytes, rows, wait_until

pytestmark = pytest.mark.slow
MiB = 1024 * 1024

# A File made in the page (a 53 MB file would be slow to hand over from Python) dropped on the canvas.
DROP = """([name, type, size]) => {
    const file = new File([new Uint8Array(size)], name, {type});
    const dt = new DataTransfer();
    dt.items.add(file);
    const target = document.querySelector('.viewport');
    target.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));
    target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
}"""


def uploads_sent(page) -> list[str]:
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if "/api/blobs" in request.url else None)
    return sent


def test_an_oversized_upload_is_refused_before_it_is_sent(pages, server, shoot):
    canvas = Canvas(server, "Big upload")
    page = open_editor(pages, canvas.path)
    sent = uploads_sent(page)
    limit = canvas.http.get("/api/operations").json()["limits"]["upload"]["max_bytes"]
    assert limit == 20 * MiB  # the server's own, stated with its render limits

    page.evaluate(DROP, ["harbour.png", "image/png", int(53.2 * MiB)])
    toast = page.locator(".toast-error").filter(has_text="harbour.png")
    expect(toast).to_have_text("Cannot add “harbour.png”: it is 53.2 MB — the limit is 20 MB.")
    shoot(page, "small-1-oversized-upload")
    assert sent == []  # refused here: not a byte went to the server
    expect(page.locator(".toast").filter(has_text="Uploading")).to_have_count(0)
    expect(rows(page)).to_have_count(0)

    # picked with the Upload button: the same refusal
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=upload]")
    chooser.value.set_files({"name": "scan.png", "mimeType": "image/png", "buffer": b"\x00" * (limit + 1)})
    expect(page.locator(".toast-error").filter(has_text="scan.png")).to_contain_text(
        "Cannot add “scan.png”: it is 20,971,521 bytes — the limit is 20 MB"
    )
    assert sent == []

    # and a fine picture still goes up
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=upload]")
    chooser.value.set_files({"name": "small.png", "mimeType": "image/png", "buffer": png_bytes(24, 16)})
    expect(rows(page)).to_have_count(1)
    assert len(sent) == 1


def test_dropping_an_unsupported_file_says_its_type_and_what_is_accepted(pages, server, shoot):
    canvas = Canvas(server, "Wrong files")
    page = open_editor(pages, canvas.path)
    sent = uploads_sent(page)
    page.evaluate(DROP, ["notes.pdf", "application/pdf", 2048])
    expect(page.locator(".toast-error").filter(has_text="notes.pdf")).to_have_text(
        "Cannot add “notes.pdf”: PDF files are not accepted — only PNG, JPEG or WebP images."
    )
    page.evaluate(DROP, ["cat.gif", "image/gif", 2048])  # an image, but not one the server takes
    expect(page.locator(".toast-error").filter(has_text="cat.gif")).to_have_text(
        "Cannot add “cat.gif”: GIF images are not accepted — only PNG, JPEG or WebP images."
    )
    shoot(page, "small-2-unsupported-drop")
    assert sent == []
    expect(rows(page)).to_have_count(0)


def test_a_long_prompt_is_kept_counted_and_refused_with_a_clear_message(pages, server, shoot):
    canvas = Canvas(server, "Long prompt")
    page = open_editor(pages, canvas.path)
    form = page.locator(".op-form[data-operation=txt2img]")
    field = form.locator("[data-field=prompt]")
    prompt = field.locator("textarea")
    meter = field.locator("[data-testid=prompt-meter]")

    prompt.fill("a lighthouse at dawn, photorealistic, 8k")
    expect(meter.locator("[data-testid=char-count]")).to_have_text("40 / 2,000")
    tokens = meter.locator("[data-testid=token-count]")
    expect(tokens).to_have_text(re.compile(r"^≈ \d+ / 75 tokens$"))
    expect(tokens).to_have_attribute("title", re.compile(r"^Approximate"))
    expect(field.locator("[data-testid=prompt-limit]")).to_be_hidden()
    shoot(page, "small-3-prompt-meter")

    # pasted past the limit: nothing is cut, the counter and a message say by how much
    pasted = "a harbour at dawn with fishing boats, " * 57  # 2,166 characters
    prompt.fill("")
    prompt.focus()
    page.keyboard.insert_text(pasted)  # as a paste arrives: one insertion
    assert prompt.input_value() == pasted
    expect(meter.locator("[data-testid=char-count]")).to_have_text(f"{len(pasted):,} / 2,000")
    notice = field.locator("[data-testid=prompt-limit]")
    expect(notice).to_have_text(
        f"{len(pasted) - 2000} characters over the 2,000-character limit: shorten the prompt to render it "
        "(nothing was cut)."
    )
    expect(tokens).to_have_class(re.compile("past-window"))
    page.click("[data-testid=generate]")
    too_many = f"At most 2,000 characters: {len(pasted) - 2000} too many"
    expect(page.locator(".toast-error").filter(has_text=too_many)).to_be_visible()
    expect(field.locator(".field-error")).to_have_text(too_many)
    expect(field.locator(".field-error")).to_be_hidden()  # the notice above already says it
    shoot(page, "small-4-prompt-over-limit")
    assert canvas.state()["layers"] == []  # refused before it was sent

    prompt.fill(pasted[:2000])
    expect(notice).to_have_text("At the 2,000-character limit: a longer prompt cannot be rendered.")
    expect(meter.locator("[data-testid=char-count]")).to_have_text("2,000 / 2,000")
    shoot(page, "small-4b-prompt-at-limit")
    prompt.fill(pasted[:1990])
    expect(notice).to_be_hidden()


def test_the_token_estimate_is_near_what_clip_counts(pages, server):
    """The estimate against CLIP's own tokenizer (the vocabulary Opendream ships) on typical prompts."""
    from engine.models.clip_tokenizer import clip_tokenizer

    prompts = [
        "a lighthouse at dawn, photorealistic, 8k",
        "masterpiece, best quality, (cat:1.2), sitting on a windowsill, soft light",
        "portrait of a woman, intricate, elegant, highly detailed, digital painting, artstation, concept art, "
        "smooth, sharp focus, illustration, art by artgerm and greg rutkowski and alphonse mucha",
        "cyberpunk street market, neon signs, rain, reflections, crowded, octane render, unreal engine 5",
        "ugly, blurry, lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, cropped",
    ]
    page = pages.new("/")
    estimates = page.evaluate(
        "async (prompts) => { const m = await import('/js/prompt.js'); return prompts.map(m.estimateTokens); }",
        prompts,
    )
    tokenizer = clip_tokenizer()
    for prompt, estimate in zip(prompts, estimates, strict=True):
        actual = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert abs(estimate - actual) <= max(2, actual * 0.15), (prompt, estimate, actual)


def test_schedulers_show_human_labels(pages, server, shoot):
    canvas = Canvas(server, "Schedulers")
    page = open_editor(pages, canvas.path)
    form = page.locator(".op-form[data-operation=txt2img]")
    select = form.locator("[data-field=scheduler] select")
    labels = select.locator("option").all_inner_texts()
    assert labels == ["DDIM", "Euler", "Euler Ancestral", "DPM++ 2M", "DPM++ 2M Karras", "PNDM", "UniPC"]
    expect(select.locator("option:checked")).to_have_text("DPM++ 2M")  # the default, dpm++
    select.select_option(label="DPM++ 2M Karras")
    form.locator("[data-field=prompt] textarea").fill("a red boat")
    form.locator("[data-field=width] input[type=number]").fill("64")
    form.locator("[data-field=height] input[type=number]").fill("64")
    form.locator("[data-field=steps] input[type=number]").fill("2")
    select.scroll_into_view_if_needed()
    shoot(page, "small-5-scheduler-labels")
    page.click("[data-testid=generate]")
    wait_until(lambda: canvas.state()["layers"], message="the new layer")
    assert canvas.state()["layers"][0]["params"]["scheduler"] == "dpm++_karras"  # the id is what is recorded


def test_home_cards_show_the_composite(pages, server, shoot):
    canvas = Canvas(server, "Composite card")
    canvas.txt2img("back", "a wall", width=96, height=64)
    upload = canvas.http.post(f"/api/blobs?canvas={canvas.id}", content=png_bytes(24, 24, (250, 200, 40)))
    canvas.command(
        {"type": "add_layer", "layer_id": "sun", "operation": "upload", "params": {"blob": upload.json()["sha256"]}}
    )
    canvas.wait_rendered("back", "sun")
    page = pages.new("/")
    card = page.locator(f"[data-testid=canvas-card][data-canvas-id='{canvas.id}']")
    image = card.locator("[data-testid=card-composite]")
    expect(image).to_have_attribute("src", re.compile(rf"/api/canvases/{canvas.id}/composite\.png\?token="))
    wait_until(lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"), 20, message="the composite")
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [96, 64]  # the canvas, not the top
    expect(card.locator(".card-count")).to_have_text("2 layers")
    card.scroll_into_view_if_needed()
    shoot(page, "small-6-home-composite")


def test_a_cancelled_render_and_what_waits_on_it_say_cancelled_not_failed(pages, server, shoot):
    canvas = Canvas(server, "Cancelled input")
    slow = {"prompt": "slow", "width": 256, "height": 256, "steps": 150}  # slow enough to cancel mid-way
    canvas.command({"type": "add_layer", "layer_id": "slow", "operation": "txt2img", "params": slow, "name": "Sea"})
    canvas.command(
        {
            "type": "add_layer",
            "layer_id": "child",
            "operation": "img2img",
            "params": {"source": "slow", "prompt": "at night", "strength": 0.5, "steps": 2},
        }
    )
    page = open_editor(pages, canvas.path)
    sea = page.locator("[data-testid=layer-row][data-layer-id=slow]")
    expect(sea).to_have_attribute("data-status", "rendering", timeout=30_000)
    sea.locator("[data-testid=cancel-render]").click()
    expect(sea).to_have_attribute("data-status", "cancelled", timeout=20_000)
    expect(sea.locator("[data-testid=layer-status]")).to_have_text("Cancelled")
    expect(sea.locator("[data-testid=layer-status]")).to_have_attribute(
        "title", re.compile(r"^Cancelled — not an error")
    )
    child = page.locator("[data-testid=layer-row][data-layer-id=child]")
    waiting = "Waiting: its input “Sea” was cancelled; render that layer again first"
    expect(child.locator("[data-testid=layer-status]")).to_have_text(waiting)
    pill = page.locator("[data-testid=render-pill]")
    expect(pill).to_contain_text("waits on “Sea” · it was cancelled: render it again to go on")
    expect(pill).to_have_class(re.compile("stuck"))  # no spinner: nothing moves until someone acts
    expect(pill.locator(".spinner")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Failed")
    shoot(page, "small-7-cancelled-input")
