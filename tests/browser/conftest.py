"""Fixtures for the browser client's tests: a real `opendream serve` on a free port, and Debian's headless
Chromium driven by Playwright. Chromium cannot be downloaded by Playwright here: `./run_opendream.sh test`
installs the distribution's package (`apt-get install chromium`). When it is missing these tests fail, loudly,
rather than skip: a browser client that is never tested in a browser is not tested."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1280, "height": 800}


def chromium_executable() -> str | None:
    explicit = os.environ.get("OPENDREAM_CHROMIUM")
    if explicit:
        return explicit
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # part of the test extras: pip install -e '.[test]'
        pytest.fail(
            "the browser tests need Playwright: .venv/bin/pip install -e '.[test]' (or ./run_opendream.sh test)"
        )
    executable = chromium_executable()
    if executable is None:
        pytest.fail(
            "the browser tests need Chromium and none was found: `apt-get install -y chromium` "
            "(./run_opendream.sh test does it), or set OPENDREAM_CHROMIUM to a Chromium/Chrome binary"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("browser") / "data") as running:
        yield running


class Pages:
    """Browser contexts (each its own localStorage, so its own user) with their pages; JavaScript errors on
    any page fail the test."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    def new(self, path: str = "/", storage: dict[str, str] | None = None) -> Any:
        context = self.browser.new_context(viewport=VIEWPORT, base_url=self.base_url, accept_downloads=True)
        context.set_default_timeout(15_000)
        if storage:
            script = "".join(f"localStorage.setItem({k!r}, {v!r});" for k, v in storage.items())
            context.add_init_script(
                f"if (!sessionStorage.getItem('seeded')) {{ {script} sessionStorage.setItem('seeded', '1'); }}"
            )
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console error on {page.url}: {message.text}")
                if message.type == "error" and not _expected_console_error(message.text)
                else None
            ),
        )
        if path is not None:
            page.goto(path)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def _expected_console_error(text: str) -> bool:
    # Failed HTTP requests the client handles (a 403 from /api/session off-loopback, a refused command) are
    # logged by Chromium itself; they are not errors in the client's code.
    return "Failed to load resource" in text


@pytest.fixture
def pages(browser: Any, server: ServerProcess) -> Iterator[Pages]:
    opened = Pages(browser, server.url)
    yield opened
    opened.close()
    assert not opened.errors, "JavaScript errors in the browser:\n" + "\n".join(opened.errors)


@pytest.fixture(scope="session")
def shoot() -> Callable[[Any, str], Path]:
    """Save a screenshot under test-output/screenshots/ (looked at by people, not compared by tests)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Any, name: str, **options: Any) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.wait_for_timeout(150)  # let the last frame paint
        page.screenshot(path=str(path), **options)
        return path

    return save
