"""The editor's help pages are the docs: each committed page is what server/help_pages.py makes of its doc."""

from server.help_pages import PAGES, ROOT, render_page


def test_the_help_pages_are_generated_from_the_docs() -> None:
    for page in PAGES:
        committed = (ROOT / "client" / "help" / f"{page}.html").read_text()
        assert committed == render_page(page), f"client/help/{page}.html is stale: run python -m server.help_pages"
