"""People with names everywhere (issue #19), in a real Chromium with three people: the History list and the
timeline's label name everyone (never "u-…" or "t…" ids), also someone who left before you came and an edit
one of them made over HTTP with another link; your own entries wear the colour you chose; a rename reaches
the others' history."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.support import Canvas, identity, open_editor, row, wait_until

pytestmark = pytest.mark.slow

ADA, BO, CY = "#e4572e", "#7c5cff", "#ffc914"
RAW_ID = re.compile(r"\bu-[a-z]+\b|\bt[0-9a-f]{8,}\b")  # what a person must never read as someone's name


def rgb(colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))


def history_names(page) -> list[str]:
    page.click("[data-testid=tab-history]")
    return page.locator("[data-testid=history-list] li .history-text strong").all_inner_texts()


def entries_by(page, name: str):
    page.click("[data-testid=tab-history]")
    return page.locator("[data-testid=history-list] li", has=page.locator("strong", has_text=re.compile(f"^{name}$")))


def toggle(page, layer_id: str) -> None:
    page.click("[data-testid=tab-layers]")
    row(page, layer_id).locator("[data-testid=toggle-visible]").click()


def test_names_not_ids_in_history_and_on_the_timeline_for_everyone(pages, server, shoot):
    canvas = Canvas(server, "Names")
    canvas.txt2img("sky", "a sky")
    canvas.wait_rendered("sky")
    editor_link = canvas.share("editor")["path"]
    viewer_link = canvas.share("viewer")["path"]

    ada = open_editor(pages, canvas.path, identity("Ada", ADA))
    toggle(ada, "sky")
    wait_until(lambda: not canvas.layer("sky")["visible"], message="Ada's edit")
    bo = open_editor(pages, editor_link, identity("Bo", BO))
    toggle(bo, "sky")
    wait_until(lambda: canvas.layer("sky")["visible"], message="Bo's edit")
    expect(entries_by(ada, "Bo")).to_have_count(1)  # Ada names Bo, who is here
    ada.context.close()  # Ada leaves
    with server.client(**{"x-opendream-user": "u-ada"}) as admin:  # ... and edits over HTTP, with another link
        for command in ({"type": "add_layer", "layer_id": "sea", "operation": "txt2img", "name": "Sea",
                         "params": {"prompt": "a sea", "width": 64, "height": 64, "steps": 2}, "seed": 1},
                        {"type": "set_opacity", "layer_id": "sky", "opacity": 0.5}):  # fmt: skip
            posted = admin.post(f"/api/canvases/{canvas.id}/commands",
                                json={"command_id": f"ada-{command['type']}", "command": command})  # fmt: skip
            assert posted.status_code == 200, posted.text
    cy = open_editor(pages, viewer_link, identity("Cy", CY))  # came after Ada left: never saw her

    for page in (bo, cy):
        expect(entries_by(page, "Ada")).to_have_count(3)  # her toggle, and her layer and opacity over HTTP
        names = history_names(page)
        assert not [n for n in names if RAW_ID.search(n)], names
        label = page.locator("[data-testid=timeline-label]")
        expect(label).to_contain_text("Ada set the opacity of")
        assert not RAW_ID.search(label.inner_text()), label.inner_text()
        expect(label.locator(".dot")).to_have_css("background-color", rgb(ADA))
        ada_avatars = entries_by(page, "Ada").locator(".avatar")
        for i in range(ada_avatars.count()):
            expect(ada_avatars.nth(i)).to_have_css("background-color", rgb(ADA))
    expect(entries_by(cy, "Bo").locator(".avatar")).to_have_css("background-color", rgb(BO))
    ticks = cy.locator(".timeline-ticks .tick")
    tick_colours = {ticks.nth(i).evaluate("el => getComputedStyle(el).backgroundColor") for i in range(ticks.count())}
    assert {rgb(ADA), rgb(BO)} <= tick_colours, tick_colours

    mine = entries_by(bo, "You")  # Bo's own entry: his name is You, in his colour
    expect(mine).to_have_count(1)
    expect(mine.locator(".avatar")).to_have_css("background-color", rgb(BO))
    expect(bo.locator("[data-testid=avatar-me]")).to_have_css("background-color", rgb(BO))
    shoot(bo, "19-names-history-bo")
    shoot(cy, "19-names-history-cy")
    cy.click("[data-testid=tab-layers]")  # layer attribution: who added each layer, by name, in their colour
    author = row(cy, "sea").locator("[data-testid=layer-author]")
    expect(author).to_have_text(" · Ada")
    expect(author.locator(".dot")).to_have_css("background-color", rgb(ADA))
    shoot(cy, "19-names-layers-cy")

    bo.click("[data-testid=avatar-me]")  # Bo renames himself: Cy's history says so
    dialog = bo.locator("[data-testid=rename-me]")
    dialog.locator("input[type=text]").fill("Bo Peep")
    dialog.locator("button[type=submit]").click()
    expect(entries_by(cy, "Bo Peep")).to_have_count(1)
    expect(entries_by(cy, "Bo")).to_have_count(0)
    expect(entries_by(bo, "You").locator(".avatar")).to_have_text("BP")  # his own entries wear his new initials
    bo_seq = [e["seq"] for e in canvas.events() if e["type"] == "layer.visibility_changed"][-1]
    cy.locator("[data-testid=timeline-slider]").evaluate(
        "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', {bubbles: true})); }", bo_seq
    )  # scrubbed to Bo's step: the label names him
    expect(cy.locator("[data-testid=timeline-label]")).to_contain_text("Bo Peep")
    shoot(cy, "19-names-timeline-cy")
