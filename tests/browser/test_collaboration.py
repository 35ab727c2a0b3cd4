"""Several browsers on one canvas: each other's layers and cursors live, share links and what a viewer may do,
reconnecting with catch-up and commands retried under their first command_id."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.support import Canvas, identity, open_editor, row, rows, stage_centre, wait_until

pytestmark = pytest.mark.slow


def test_two_people_see_each_others_layers_cursors_and_selection(pages, server, shoot):
    canvas = Canvas(server, "Together")
    canvas.txt2img("sea", "the sea")
    canvas.wait_rendered("sea")
    ada = open_editor(pages, canvas.path, identity("Ada", "#ff6392", "u-ada"))
    grace = open_editor(pages, canvas.path, identity("Grace", "#17bebb", "u-grace"))

    # avatars of who is here
    expect(ada.locator("[data-testid=avatar][data-user$='.u-grace']")).to_be_visible()
    expect(grace.locator("[data-testid=avatar][data-user$='.u-ada']")).to_be_visible()

    # Ada adds a layer from the form; Grace sees it appear and render
    form = ada.locator(".op-form[data-operation=txt2img]")
    form.locator("[data-field=prompt] textarea").fill("a lighthouse")
    form.locator("[data-field=width] input[type=number]").fill("64")
    form.locator("[data-field=height] input[type=number]").fill("64")
    form.locator("[data-field=steps] input[type=number]").fill("2")
    ada.click("[data-testid=generate]")
    expect(rows(grace)).to_have_count(2)
    expect(rows(grace).first).to_have_attribute("data-status", "rendered", timeout=60_000)
    new_id = rows(grace).first.get_attribute("data-layer-id")

    # Ada's cursor, with her name, moves on Grace's canvas (in picture coordinates)
    x, y = stage_centre(ada)
    ada.mouse.move(x - 40, y - 20)
    ada.mouse.move(x - 30, y - 10, steps=3)
    cursor = grace.locator("[data-testid=remote-cursor][data-user$='.u-ada']")
    expect(cursor).to_be_visible()
    expect(cursor).to_contain_text("Ada")
    # Grace selects the sea layer: Ada sees who has it selected
    row(grace, "sea").click()
    expect(row(ada, "sea").locator(".mini-avatar")).to_have_attribute("title", re.compile("Grace"))
    # Grace moves hers too; both screens show the other
    gx, gy = stage_centre(grace)
    grace.mouse.move(gx + 50, gy + 30)
    grace.mouse.move(gx + 60, gy + 40, steps=3)
    expect(ada.locator("[data-testid=remote-cursor][data-user$='.u-grace']")).to_contain_text("Grace")
    shoot(ada, "08-collaboration-ada")
    shoot(grace, "09-collaboration-grace")

    # a change by one shows for the other: visibility, then the history names who did it
    row(grace, new_id).locator("[data-testid=toggle-visible]").click()
    expect(row(ada, new_id)).to_have_class(re.compile("hidden-layer"))
    ada.click("[data-testid=tab-history]")
    expect(ada.locator("[data-testid=history-list] li").first).to_contain_text("Grace hid")

    # leaving removes the cursor and the avatar
    grace.close()
    expect(ada.locator("[data-testid=avatar][data-user$='.u-grace']")).to_have_count(0)
    expect(ada.locator("[data-testid=remote-cursor][data-user$='.u-grace']")).to_have_count(0)


def test_share_links_and_a_viewer_who_cannot_edit(pages, server, shoot):
    canvas = Canvas(server, "Shared")
    canvas.txt2img("sky", "a sky")
    canvas.wait_rendered("sky")
    owner = open_editor(pages, canvas.path, identity("Owner", "#7c5cff", "u-owner"))
    owner.click("[data-testid=share]")
    dialog = owner.locator("[data-testid=share-dialog]")
    dialog.locator("[data-testid=share-role]").select_option("viewer")
    dialog.locator("[data-testid=share-create]").click()
    url = dialog.locator("[data-testid=share-url]").input_value()
    assert re.search(rf"[?&]canvas={canvas.id}#token=[\w-]+$", url), url  # the token in the fragment only
    assert url.startswith(server.url)  # the page's own host, not a hard-coded address
    expect(dialog.locator("[data-testid=share-list] li")).to_have_count(1)
    dialog.locator("[data-testid=share-role]").select_option("editor")
    dialog.locator("[data-testid=share-create]").click()
    expect(dialog.locator("[data-testid=share-list] li")).to_have_count(2)
    shoot(owner, "10-share-dialog")
    owner.keyboard.press("Escape")

    viewer = open_editor(pages, url.removeprefix(server.url), identity("Vic", "#ffc914", "u-vic"))
    expect(viewer.locator("[data-testid=role]")).to_have_text("Viewer")
    assert "token=" not in viewer.url  # taken out of the address bar, kept in localStorage
    expect(viewer.locator("[data-testid=readonly-banner]")).to_be_visible()
    expect(viewer.locator("[data-testid=generate]")).to_be_disabled()
    expect(viewer.locator("[data-testid=share]")).to_be_disabled()
    expect(viewer.locator("[data-testid=tool-brush]")).to_be_disabled()
    expect(viewer.locator("[data-testid=upload]")).to_be_disabled()
    sky = row(viewer, "sky")
    expect(sky.locator("[data-testid=toggle-visible]")).to_be_disabled()
    expect(sky.locator("[data-testid=delete-layer]")).to_be_hidden()
    sky.click()
    expect(viewer.locator("[data-testid=apply]")).to_have_count(0)
    expect(viewer.locator("[data-testid=left-panel] textarea").first).to_be_disabled()
    viewer.keyboard.press("Delete")
    viewer.keyboard.press("Control+z")
    expect(viewer.locator("[data-testid=canvas-name]")).to_have_attribute("readonly", "")
    # even a command forced past the UI is refused by the server
    reply = viewer.evaluate(
        "() => window.opendream.queue.submit({type: 'rename_canvas', name: 'hacked'}).promise.then(() => 'accepted', (e) => e.code)"
    )
    assert reply == "forbidden"
    shoot(viewer, "11-viewer")
    # the viewer can still look back in time
    viewer.click("[data-testid=tab-history]")
    expect(viewer.locator("[data-testid=history-list] li").first).to_be_visible()
    assert [e for e in canvas.events() if e["actor"].endswith(".u-vic")] == []
    assert canvas.state()["name"] == "Shared"

    # revoking the link closes the door
    owner.click("[data-testid=share]")
    viewer_share = owner.locator("[data-testid=share-list] li", has_text="Viewer")
    viewer_share.locator("[data-testid=revoke]").click()
    viewer_share.locator("[data-testid=confirm-revoke]").click()  # asked first, in place
    expect(owner.locator("[data-testid=share-list] li")).to_have_count(1)
    viewer.reload()
    expect(viewer.locator("[data-testid=connection]")).to_have_attribute("data-status", "fatal")
    expect(viewer.locator(".fatal-card")).to_contain_text("revoked")


def test_reconnect_catches_up_and_retries_commands_with_their_id(pages, server):
    canvas = Canvas(server, "Flaky network")
    page = open_editor(pages, canvas.path, identity("Ada", "#ff6392", "u-ada"))

    # a command whose ack is lost: the connection drops before it arrives
    page.evaluate(
        """() => {
            const q = window.opendream.queue;
            const settle = q.settle.bind(q);
            window.lostAcks = 0;
            q.settle = (reply) => {
                if (window.lostAcks === 0 && reply.type === 'ack') { window.lostAcks = 1; return true; }
                return settle(reply);
            };
            window.renamed = q.submit({type: 'rename_canvas', name: 'Renamed once'}).promise;
        }"""
    )
    wait_until(lambda: page.evaluate("window.lostAcks") == 1, 10, message="the ack to be lost")
    page.evaluate("window.opendream.live.drop()")
    # while it is away, someone else adds a layer
    canvas.txt2img("meanwhile", "added while offline")
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    expect(row(page, "meanwhile")).to_be_visible()
    ack = page.evaluate("window.renamed")
    assert ack["duplicate"] is True  # sent again after the reconnect, under the same command_id
    renames = [e for e in canvas.events() if e["type"] == "canvas.renamed"]
    assert len(renames) == 1
    expect(page.locator("[data-testid=canvas-name]")).to_have_value("Renamed once")

    # a command made while disconnected waits, then goes
    page.evaluate("window.opendream.live.drop()")
    page.evaluate(
        "() => { window.later = window.opendream.queue.submit({type: 'rename_canvas', name: 'Sent later'}).promise; }"
    )
    assert page.evaluate("window.opendream.queue.size") == 1
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    assert page.evaluate("window.later.then(a => a.duplicate)") is False
    wait_until(lambda: canvas.state()["name"] == "Sent later", message="the queued rename")
    # the client's folded state equals the server's
    client_state = page.evaluate(
        "() => { const s = window.opendream.session.state; return {version: s.version, order: s.order, name: s.name}; }"
    )
    server_state = canvas.state()
    assert client_state == {
        "version": server_state["version"],
        "order": server_state["order"],
        "name": server_state["name"],
    }
