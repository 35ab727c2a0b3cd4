"""Importing a file saved by the original Opendream shows, once, what could only be kept as a picture."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.support import Canvas, open_editor, rows

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "opendream2023" / "webui-every-op.json"


def test_import_an_original_opendream_file_shows_its_warnings(pages, server, shoot):
    canvas = Canvas(server, "Any")
    page = open_editor(pages, canvas.path)
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=import]")
    chooser.value.set_files(str(FIXTURE))
    page.wait_for_url(re.compile(r"canvas=(?!" + canvas.id + r")"))
    dialog = page.locator("[data-testid=import-warnings]")
    expect(dialog).to_be_visible()
    expect(dialog.locator("li")).to_have_count(2)
    expect(dialog.locator("li").first).to_contain_text("layer 6 (controlnet_openpose)")
    shoot(page, "import-warnings")
    dialog.locator("button.btn-primary").click()
    expect(dialog).to_have_count(0)
    expect(rows(page)).to_have_count(17)
    page.reload()
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    expect(page.locator("[data-testid=import-warnings]")).to_have_count(0)  # shown once
