"""The editor's help pages, generated from docs/ (one source for both): `python -m server.help_pages` writes
client/help/<page>.html from docs/<page>.md (styled by client/help/help.css: the CSP allows no inline style);
a test fails when a committed page is older than its doc."""

from __future__ import annotations

import html
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"models": "How to add a real model"}
TEMPLATE = """<!doctype html>
<!-- Generated from docs/{page}.md by `python -m server.help_pages`: edit the doc, not this file. -->
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Opendream</title>
<link rel="stylesheet" href="help.css">
</head>
<body>
<a class="back" href="../">&larr; Opendream</a>
{body}
</body>
</html>
"""


def render_page(page: str) -> str:
    import markdown

    text = (ROOT / "docs" / f"{page}.md").read_text()
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "toc"])
    return TEMPLATE.format(page=page, title=html.escape(PAGES[page]), body=body)


def write_pages() -> list[Path]:
    written = []
    for page in PAGES:
        target = ROOT / "client" / "help" / f"{page}.html"
        target.write_text(render_page(page))
        written.append(target)
    return written


if __name__ == "__main__":
    for path in write_pages():
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
