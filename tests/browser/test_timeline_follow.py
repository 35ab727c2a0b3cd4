"""A timeline you can trust, follow mode and the keyboard: scrubbing lands on the version under the pointer (the
track keeps its width when the past's actions appear), hovering the track shows that version's picture and who
did what, past versions show their recorded pictures; a click on someone's avatar follows their viewport and
selection; the operation menu and the layer order work from the keyboard."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.support import Canvas, identity, open_editor, row, rows, stage_centre, wait_until

pytestmark = pytest.mark.slow

THUMB = 14  # the timeline slider's thumb width (styles.css), as client/js/ui/timeline-hover.js counts it


def history_canvas(server, renames: int = 28) -> Canvas:
    """A canvas with one rendered layer (added at v2, rendered at v3), then `renames` renames of it."""
    canvas = Canvas(server, "Timeline")
    canvas.txt2img("sea", "the sea")
    canvas.wait_rendered("sea")
    for index in range(renames):
        canvas.command({"type": "rename_layer", "layer_id": "sea", "name": f"Sea {index + 1}"})
    return canvas


def x_of(box: dict, version: int, head: int) -> float:
    """Where on the page the slider's thumb stands at `version` (1..head)."""
    return box["x"] + THUMB / 2 + (version - 1) / (head - 1) * (box["width"] - THUMB)


def track_box(page) -> dict:
    return page.locator("[data-testid=timeline-slider]").bounding_box()


def drag_on_track(page, box: dict, head: int, start: int, end: int) -> None:
    y = box["y"] + box["height"] / 2
    page.mouse.move(x_of(box, start, head), y)
    page.mouse.down()
    page.mouse.move(x_of(box, end, head), y, steps=8)
    page.mouse.up()


def test_scrubbing_lands_on_the_version_under_the_pointer(pages, server, shoot):
    canvas = history_canvas(server)
    head = canvas.state()["version"]
    page = open_editor(pages, canvas.path)
    expect(page.locator("[data-testid=timeline-version]")).to_have_text(f"v{head}")
    live = track_box(page)

    # the first press enters the past (the actions appear): the rest of the drag still aims true
    drag_on_track(page, live, head, 12, 20)
    expect(page.locator("[data-testid=timeline-version]")).to_have_text(f"v20 of {head}")
    expect(page.locator("[data-testid=scrub-banner]")).to_contain_text(f"Viewing version 20 of {head}")
    expect(page.locator("[data-testid=timeline-actions]")).to_be_visible()
    assert track_box(page) == live, "the track moved or shrank when scrubbing started"
    shoot(page, "timeline-scrub-v20")

    # once the actions are there: a press and a drag land where they point too
    drag_on_track(page, track_box(page), head, 8, 5)
    expect(page.locator("[data-testid=timeline-version]")).to_have_text(f"v5 of {head}")
    expect(row(page, "sea")).to_contain_text("Sea 2")  # v5 is the second rename
    assert track_box(page) == live

    # a version where the layer had no picture yet (v2, the add): the picture it got later, no spinner
    drag_on_track(page, live, head, 3, 2)
    expect(page.locator("[data-testid=scrub-banner]")).to_contain_text(f"Viewing version 2 of {head}")
    expect(row(page, "sea").locator(".layer-thumb img")).to_be_visible()
    expect(row(page, "sea")).not_to_contain_text("Waiting to render")
    expect(page.locator("[data-testid=layer-list] .spinner")).to_have_count(0)
    shoot(page, "timeline-past-recorded-picture")
    page.keyboard.press("Escape")
    expect(page.locator("[data-testid=scrub-banner]")).to_be_hidden()


def test_hovering_the_track_shows_that_versions_picture_and_who_did_what(pages, server, shoot):
    canvas = history_canvas(server, renames=10)
    head = canvas.state()["version"]
    page = open_editor(pages, canvas.path)
    expect(page.locator("[data-testid=timeline-version]")).to_have_text(f"v{head}")
    box = track_box(page)
    page.mouse.move(x_of(box, 7, head), box["y"] + box["height"] / 2)
    card = page.locator("[data-testid=timeline-hover]")
    expect(card).to_be_visible()
    expect(card).to_have_attribute("data-version", "7")
    expect(card).to_contain_text("Version 7")
    expect(card).to_contain_text("renamed a layer to “Sea 4”")
    picture = card.locator("[data-testid=timeline-hover-picture] img")
    expect(picture).to_be_visible()
    wait_until(lambda: picture.evaluate("img => img.complete && img.naturalWidth > 0"), message="the thumbnail")
    assert page.locator("[data-testid=timeline-version]").text_content() == f"v{head}"  # hovering is not scrubbing
    shoot(page, "timeline-hover-card")
    # before anything was drawn: the card says so instead of a picture
    page.mouse.move(x_of(box, 1, head), box["y"] + box["height"] / 2)
    expect(card).to_have_attribute("data-version", "1")
    expect(card.locator("[data-testid=timeline-hover-picture]")).to_contain_text("No picture at this version")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] - 120)
    expect(card).to_be_hidden()


def view_of(page) -> dict:
    return page.evaluate("() => ({...window.opendream.viewport.view, centre: window.opendream.viewport.sharedView()})")


def same_view(a: dict, b: dict) -> bool:
    return abs(a["scale"] - b["scale"]) < 1e-3 and all(abs(a["centre"][k] - b["centre"][k]) < 0.5 for k in "xy")


def test_following_someone_moves_your_viewport_with_theirs(pages, server, shoot):
    canvas = Canvas(server, "Follow")
    canvas.txt2img("sea", "the sea", width=128, height=96)
    canvas.txt2img("sky", "the sky")
    canvas.wait_rendered("sea", "sky")
    ada = open_editor(pages, canvas.path, identity("Ada", "#ff6392", "u-ada"))
    grace = open_editor(pages, canvas.path, identity("Grace", "#17bebb", "u-grace"))
    avatar = grace.locator("[data-testid=avatar][data-user$='.u-ada']")
    expect(avatar).to_have_attribute("title", re.compile("click to follow"))
    avatar.click()
    expect(grace.locator("[data-testid=follow-banner]")).to_contain_text("Following Ada")
    expect(avatar).to_have_attribute("aria-pressed", "true")

    # Ada zooms in and pans: Grace's view goes with hers
    fitted = view_of(grace)["scale"]
    ada.click("[data-testid=zoom-in]")
    ada.click("[data-testid=zoom-in]")
    x, y = stage_centre(ada)
    ada.mouse.move(x, y)
    ada.mouse.down()
    ada.mouse.move(x - 120, y - 60, steps=6)
    ada.mouse.up()
    wait_until(lambda: same_view(view_of(ada), view_of(grace)), timeout=10, message="Grace's view to follow Ada's")
    assert view_of(grace)["scale"] > 1.2 * fitted  # zoomed in as Ada did, not fitted to her own screen
    # and her selection
    row(ada, "sky").click()
    wait_until(lambda: grace.evaluate("() => window.opendream.selected") == "sky", timeout=10, message="the selection")
    shoot(grace, "follow-grace-follows-ada")
    shoot(ada, "follow-ada-followed")

    # Grace pans herself: following stops, and Ada's next zoom leaves her alone
    gx, gy = stage_centre(grace)
    grace.mouse.move(gx, gy)
    grace.mouse.down()
    grace.mouse.move(gx + 80, gy + 40, steps=4)
    grace.mouse.up()
    expect(grace.locator("[data-testid=follow-banner]")).to_be_hidden()
    mine = view_of(grace)
    ada.click("[data-testid=zoom-out]")
    grace.wait_for_timeout(400)
    assert same_view(view_of(grace), mine)

    # Esc stops it too
    avatar.click()
    expect(grace.locator("[data-testid=follow-banner]")).to_be_visible()
    wait_until(lambda: same_view(view_of(ada), view_of(grace)), timeout=10, message="following again")
    grace.keyboard.press("Escape")
    expect(grace.locator("[data-testid=follow-banner]")).to_be_hidden()
    expect(avatar).to_have_attribute("aria-pressed", "false")


def test_the_operation_menu_works_from_the_keyboard(pages, server, shoot):
    canvas = Canvas(server, "Keyboard menu")
    page = open_editor(pages, canvas.path)
    picker = page.locator("[data-testid=op-picker]")
    expect(page.locator(".op-form[data-operation=txt2img]")).to_be_visible()
    enabled = page.evaluate(
        "() => window.opendream.groups.flatMap((g) => g.operations).filter((o) => !o.unavailable).map((o) => o.name)"
    )
    following = enabled[enabled.index("txt2img") + 1]

    picker.focus()
    page.keyboard.press("ArrowDown")  # opens on the chosen operation
    menu = page.locator("[data-testid=op-menu]")
    expect(menu).to_be_visible()
    expect(menu.locator(".op-item[data-op=txt2img]")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(menu.locator(f".op-item[data-op='{following}']")).to_be_focused()
    shoot(page, "operation-menu-keyboard")
    page.keyboard.press("Escape")  # closes without choosing
    expect(menu).to_be_hidden()
    expect(picker).to_be_focused()
    expect(page.locator(".op-form[data-operation=txt2img]")).to_be_visible()

    page.keyboard.press("Enter")  # the button opens it again; arrows, then Enter chooses
    expect(menu).to_be_visible()
    page.keyboard.press("End")
    page.keyboard.press("Home")
    expect(menu.locator(f".op-item[data-op='{enabled[0]}']")).to_be_focused()
    for _ in range(enabled.index(following)):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(menu).to_be_hidden()
    expect(page.locator(f".op-form[data-operation='{following}']")).to_be_visible()
    expect(page.locator("[data-testid=op-picker]")).to_be_focused()


def test_a_layer_row_moves_with_alt_and_the_arrows(pages, server, shoot):
    canvas = Canvas(server, "Keyboard order")
    canvas.txt2img("low", "the ground")
    canvas.txt2img("high", "the sky")
    page = open_editor(pages, canvas.path)
    expect(rows(page)).to_have_count(2)
    low = row(page, "low")
    expect(low).to_have_attribute("title", re.compile("Alt\\+↑ / Alt\\+↓ moves it up or down"))
    low.focus()
    page.keyboard.press("Alt+ArrowUp")
    wait_until(lambda: canvas.state()["order"] == ["high", "low"], message="the move")
    expect(rows(page).first).to_have_attribute("data-layer-id", "low")
    expect(low).to_be_focused()  # the row keeps the focus: pressing again goes on
    shoot(page, "layer-moved-by-keyboard")
    page.keyboard.press("Alt+ArrowDown")
    wait_until(lambda: canvas.state()["order"] == ["low", "high"], message="the move back")
    expect(rows(page).first).to_have_attribute("data-layer-id", "high")
    page.keyboard.press("ArrowUp")  # plain arrows move the focus between rows
    expect(row(page, "high")).to_be_focused()
