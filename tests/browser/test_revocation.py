"""Revoking a share link, in two browsers: the owner confirms it in the share dialog, and the editor's page then
cannot change the canvas anywhere (every control off, no command queued or sent), while the owner can still copy
the other links later. An editor whose connection is down cannot edit either, until it is back."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import Canvas, identity, row, set_range, wait_until

pytestmark = pytest.mark.slow

# Every frame the page puts on a WebSocket, by type, in order: "no command was sent" is checked on the wire.
SPY = """
(() => {
  const send = WebSocket.prototype.send;
  window.sentFrames = [];
  WebSocket.prototype.send = function (data) {
    try { window.sentFrames.push(JSON.parse(data).type); } catch { window.sentFrames.push('?'); }
    return send.call(this, data);
  };
})();
"""

# What a page would try, past any control: the editor's own command path, a restore, and the queue itself.
TRY_TO_EDIT = """async () => {
  const editor = window.opendream;
  const viaEditor = await editor.command({type: 'rename_canvas', name: 'changed anyway'});
  await editor.timeTravel.restore(1);
  const forced = await editor.queue.submit({type: 'rename_canvas', name: 'forced'}).promise
    .then(() => 'sent', (error) => error.code);
  return {viaEditor, forced, queued: editor.queue.size};
}"""


def open_spied(pages: Any, path: str, storage: dict[str, str]) -> Any:
    """An editor page whose WebSocket frames are recorded (window.sentFrames), once it is live."""
    page = pages.new(None, storage=storage)
    page.add_init_script(SPY)
    page.goto(path)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    return page


def create_link(dialog: Any, role: str) -> str:
    """Create a link in the open share dialog; its address, once the dialog shows it (not the one before)."""
    url = dialog.locator("[data-testid=share-url]")
    before = url.input_value() if url.count() else None
    dialog.locator("[data-testid=share-role]").select_option(role)
    dialog.locator("[data-testid=share-create]").click()
    expect(url).to_have_value(re.compile(r"#token=[\w-]+$"))
    wait_until(lambda: url.input_value() != before, 10, message=f"the new {role} link")
    return url.input_value()


def link_item(owner: Any, role: str) -> Any:
    return owner.locator(f"[data-testid=share-list] li[data-role={role}]")


def sent_commands(page: Any, since: int = 0) -> list[str]:
    return [t for t in page.evaluate("window.sentFrames")[since:] if t == "command"]


def expect_no_editing(page: Any) -> None:
    """Every editing control of the page is off: left panel, layer actions, tools, undo, the name."""
    expect(page.locator("[data-testid=generate]")).to_be_disabled()
    expect(page.locator("[data-testid=left-panel] textarea").first).to_be_disabled()
    expect(page.locator("[data-testid=upload]")).to_be_disabled()
    expect(page.locator("[data-testid=tool-brush]")).to_be_disabled()
    expect(page.locator("[data-testid=undo]")).to_be_disabled()
    expect(page.locator("[data-testid=canvas-name]")).to_have_attribute("readonly", "")
    sea = row(page, "sea")
    expect(sea.locator("[data-testid=toggle-visible]")).to_be_disabled()
    expect(sea.locator("[data-testid=delete-layer]")).to_be_hidden()


def test_the_owner_revokes_an_editor_who_then_cannot_edit_and_copies_a_link_again(pages, server, shoot):
    canvas = Canvas(server, "Revocation")
    canvas.txt2img("sea", "the sea")
    canvas.wait_rendered("sea")
    owner = open_spied(pages, canvas.path, identity("Olga", "#7c5cff", "u-olga"))
    owner.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)

    # the owner makes an editor link and a viewer link
    owner.click("[data-testid=share]")
    dialog = owner.locator("[data-testid=share-dialog]")
    editor_url = create_link(dialog, "editor")
    viewer_url = create_link(dialog, "viewer")
    expect(dialog.locator("[data-testid=share-list] li")).to_have_count(2)
    expect(dialog.locator("[data-testid=copy-link]")).to_have_count(2)
    shoot(owner, "revocation-01-owner-made-two-links")
    owner.keyboard.press("Escape")

    # the editor opens theirs and edits: the controls are live
    editor = open_spied(pages, editor_url.removeprefix(server.url), identity("Eddie", "#17bebb", "u-eddie"))
    expect(editor.locator("[data-testid=role]")).to_have_text("Editor")
    expect(editor.locator("[data-testid=generate]")).to_be_enabled()
    row(editor, "sea").locator("[data-testid=toggle-visible]").click()
    wait_until(lambda: canvas.layer("sea")["visible"] is False, message="the editor's edit")
    assert len(sent_commands(editor)) == 1
    shoot(editor, "revocation-02-editor-live")

    # the owner revokes it, asked first with the role named
    owner.click("[data-testid=share]")
    link_item(owner, "editor").locator("[data-testid=revoke]").click()
    question = link_item(owner, "editor").locator("[data-testid=revoke-question]")
    expect(question).to_contain_text("Revoke this editor link?")
    expect(link_item(owner, "editor").locator("[data-testid=confirm-revoke]")).to_have_text("Revoke editor link")
    assert len(canvas.http.get(f"/api/canvases/{canvas.id}/shares").json()["shares"]) == 2  # nothing revoked yet
    shoot(owner, "revocation-03-owner-confirms")
    link_item(owner, "editor").locator("[data-testid=confirm-revoke]").click()
    expect(owner.locator("[data-testid=share-list] li")).to_have_count(1)
    expect(link_item(owner, "viewer")).to_be_visible()

    # the editor's page: told why, every control off, and nothing it tries is queued or sent
    expect(editor.locator("[data-testid=connection]")).to_have_attribute("data-status", "fatal")
    banner = editor.locator("[data-testid=readonly-banner]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Your access was revoked")
    expect(editor.locator(".fatal-card")).to_contain_text("revoked")
    expect_no_editing(editor)
    frames = len(editor.evaluate("window.sentFrames"))
    events = len(canvas.events())
    row(editor, "sea").click()  # selecting is looking, not editing
    editor.keyboard.press("Delete")
    editor.keyboard.press("Control+z")
    editor.keyboard.press("Control+Enter")
    tried = editor.evaluate(TRY_TO_EDIT)
    assert tried == {"viaEditor": None, "forced": "disconnected", "queued": 0}
    expect(editor.locator("[data-testid=confirm-restore]")).to_have_count(0)
    expect(editor.locator("[data-testid=confirm-delete]")).to_have_count(0)
    assert sent_commands(editor, frames) == []
    assert len(canvas.events()) == events
    assert canvas.state()["name"] == "Revocation"
    shoot(editor, "revocation-04-editor-revoked")

    # the owner closes the dialog, comes back later, and copies the viewer link again
    owner.keyboard.press("Escape")
    expect(owner.locator("[data-testid=share-dialog]")).to_have_count(0)
    owner.click("[data-testid=share]")
    link_item(owner, "viewer").locator("[data-testid=copy-link]").click()
    expect(owner.locator("[data-testid=share-url]")).to_have_value(viewer_url)
    wait_until(lambda: owner.evaluate("navigator.clipboard.readText()") == viewer_url, 10, message="the clipboard")
    shoot(owner, "revocation-05-owner-copied-again")


def test_an_editor_whose_connection_is_down_cannot_edit_until_it_is_back(pages, server, shoot):
    canvas = Canvas(server, "Offline")
    canvas.txt2img("sea", "the sea")
    canvas.wait_rendered("sea")
    link = canvas.share("editor")
    editor = open_spied(pages, link["path"], identity("Eddie", "#17bebb", "u-eddie"))
    expect(editor.locator("[data-testid=generate]")).to_be_enabled()

    # the connection drops and stays down (the page's reconnects go nowhere)
    editor.evaluate("() => { window.opendream.live.connect = () => {}; window.opendream.live.drop(); }")
    expect(editor.locator("[data-testid=connection]")).to_have_attribute("data-status", "reconnecting")
    expect(editor.locator("[data-testid=readonly-banner]")).to_contain_text("editing is paused")
    expect_no_editing(editor)
    tried = editor.evaluate(
        "async () => ({viaEditor: await window.opendream.command({type: 'rename_canvas', name: 'offline'}),"
        " queued: window.opendream.queue.size})"
    )
    assert tried == {"viaEditor": None, "queued": 0}
    # looking back in time still works; restoring from there does not
    set_range(editor.locator("[data-testid=timeline-slider]"), 1)
    expect(editor.locator("[data-testid=timeline-version]")).to_contain_text("1")
    expect(editor.locator("[data-testid=restore]")).to_be_hidden()
    shoot(editor, "revocation-06-editor-offline")

    # back online: editing comes back, and nothing made offline was sent
    editor.evaluate("() => { delete window.opendream.live.connect; window.opendream.live.reconnectNow(); }")
    expect(editor.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    editor.keyboard.press("Escape")  # back to live from the past version
    expect(editor.locator("[data-testid=generate]")).to_be_enabled()
    expect(row(editor, "sea").locator("[data-testid=toggle-visible]")).to_be_enabled()
    assert sent_commands(editor) == []
    assert canvas.state()["name"] == "Offline"
