"""Chromium as the attacker (issue #13): a page on another site, or one whose name was rebound to 127.0.0.1, tries
to read the admin token, post a form, frame the editor, or open the live socket; and the client itself under its
Content-Security-Policy (no violation on any page it shows). Attacker names resolve to 127.0.0.1 through
Chromium's host resolver rules, and Chromium's own local-network protections are turned off, so what stops each
attack is the server."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.relsupport import new_canvas, share, start_server
from tests.security.edgesupport import log_text
from tests.server_process import ServerProcess, free_port

pytestmark = pytest.mark.slow

SHOTS = Path(os.environ.get("OPENDREAM_SECURITY_SHOTS", "/tmp/shots-sec"))
ATTACKER_NAMES = ("evil.test", "friend.test")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--host-resolver-rules=" + ", ".join(f"MAP {name} 127.0.0.1" for name in ATTACKER_NAMES),
    # The attacker's browser has no local-network protection: the server must hold on its own.
    "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests",
]


class AttackerSite:
    """The attacker's web server: whatever pages the test puts in `pages`, on its own port, any host name."""

    def __init__(self) -> None:
        self.port = free_port()
        self.pages: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.pages.get(self.path.partition("?")[0], "<p>nothing</p>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, name: str = "evil.test") -> str:
        return f"http://{name}:{self.port}{path}"


@pytest.fixture(scope="module")
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    yield site
    site.httpd.shutdown()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("OPENDREAM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:  # module-scoped: its event loop ends with this module
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    running = start_server(tmp_path_factory.mktemp("browser-sec") / "data", "--log-level", "info")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory, attacker) -> Iterator[ServerProcess]:
    """Anyone may create canvases here (--open-creation), and pages of friend.test may write: so only the Origin
    check stands between an attacker's form and a new canvas."""
    running = start_server(tmp_path_factory.mktemp("browser-open") / "data", "--no-render", "--open-creation",
                           "--allowed-origins", attacker.url("", "friend.test"), "--log-level", "info")  # fmt: skip
    yield running
    running.stop()


def new_page(browser: Any, console: list[str] | None = None) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    if console is not None:
        page.on("console", lambda message: console.append(message.text))
    return page


def canvas_names(server: ServerProcess) -> list[str]:
    with server.client() as client:
        return [canvas["name"] for canvas in client.get("/api/canvases").json()["canvases"]]


def test_a_rebound_page_gets_no_token(chromium, server):
    """DNS rebinding: the attacker's page is at http://evil.test:PORT/, then evil.test resolves to 127.0.0.1, so
    its requests are same-origin for the browser and reach the server under Host evil.test. They get nothing."""
    canvas_id, owner = new_canvas(server, "Rebound")
    attack = f"""<!doctype html><script>
      window.results = (async () => {{
        const out = {{}};
        for (const path of ['/api/session', '/api/canvases', '/api/canvases/{canvas_id}/state', '/']) {{
          try {{ const r = await fetch(path); out[path] = {{status: r.status, body: await r.text()}}; }}
          catch (e) {{ out[path] = {{error: String(e)}}; }}
        }}
        out.socket = await new Promise((done) => {{
          const ws = new WebSocket('ws://' + location.host + '/ws/canvases/{canvas_id}');
          ws.onopen = () => done('open'); ws.onclose = (e) => done('closed ' + e.code);
        }});
        return out;
      }})();
    </script>"""
    page = new_page(chromium)
    origin = f"http://evil.test:{server.port}"
    # The page itself comes from the attacker (before the rebinding); everything after it reaches 127.0.0.1.
    page.route(f"{origin}/attack", lambda route: route.fulfill(status=200, content_type="text/html", body=attack))
    page.goto(f"{origin}/attack")
    results = page.evaluate("window.results")
    page.context.close()
    for path in ("/api/session", "/api/canvases", f"/api/canvases/{canvas_id}/state", "/"):
        assert results[path]["status"] == 421, (path, results[path])
        assert server.admin_token not in results[path]["body"] and owner not in results[path]["body"]
    assert results["socket"].startswith("closed") and results["socket"] != "open"
    text = log_text(server)
    assert "GET /api/session 421" in text and "forbidden_host" in text  # it did reach the server
    assert f"WS /ws/canvases/{canvas_id} 403" in text


def form_page(action: str, name: str) -> str:
    # enctype=text/plain: the body is `<name>=<value>`, here {"name": "...", "command_id": "="}: valid JSON that
    # a JSON API without an Origin check would take.
    return f"""<!doctype html><form id="f" method="POST" action="{action}" enctype="text/plain">
      <input type="hidden" name='{{"name": "{name}", "command_id": "' value='"}}'></form>
      <script>document.getElementById('f').submit()</script>"""


def test_a_cross_site_form_post_creates_no_canvas(chromium, open_server, attacker):
    action = f"{open_server.url}/api/canvases"
    attacker.pages["/form-evil"] = form_page(action, "csrf-evil")
    attacker.pages["/form-friend"] = form_page(action, "csrf-friend")
    page = new_page(chromium)
    with page.expect_navigation(url=re.compile(re.escape(action))) as navigation:
        page.goto(attacker.url("/form-evil"))
    assert navigation.value.status == 403
    assert "forbidden_origin" in page.content() and "evil.test" in page.content()
    assert "csrf-evil" not in canvas_names(open_server)
    # The same form from an origin the operator allowed does create one: the form reaches the server, and it is
    # the Origin check that refuses the attacker's.
    with page.expect_navigation(url=re.compile(re.escape(action))) as navigation:
        page.goto(attacker.url("/form-friend", "friend.test"))
    assert navigation.value.status == 201, page.content()
    assert "csrf-friend" in canvas_names(open_server)
    page.context.close()
    assert "POST /api/canvases 403" in log_text(open_server)


def test_a_framed_editor_does_not_load(chromium, server, attacker):
    """Clickjacking: the signed-in editor (or the canvas list, signed in as admin on this machine) inside an
    attacker's frame. The browser refuses to render it (frame-ancestors 'none', X-Frame-Options: DENY)."""
    canvas_id, _ = new_canvas(server, "Framed")
    attacker.pages["/frame"] = f"""<!doctype html>
      <iframe name="home" src="{server.url}/" width="600" height="400"></iframe>
      <iframe name="editor" src="{server.url}/?canvas={canvas_id}" width="600" height="400"></iframe>
      <iframe name="own" src="/plain" width="100" height="100"></iframe>"""
    attacker.pages["/plain"] = "<p id='mine'>the attacker's own frame</p>"
    console: list[str] = []
    page = new_page(chromium, console)
    page.goto(attacker.url("/frame"))
    page.wait_for_load_state("load")
    page.wait_for_timeout(1500)
    frames = {frame.name: frame for frame in page.frames}
    assert frames["own"].query_selector("#mine") is not None  # frames work in this browser
    for name in ("home", "editor"):
        frame = frames[name]
        assert not frame.url.startswith(server.url), (name, frame.url)  # an error page in its place
        assert frame.query_selector("#app") is None, name
    assert any("frame-ancestors" in line or "X-Frame-Options" in line for line in console), console
    page.context.close()
    assert "GET / 200" in log_text(server)  # it was served: the browser refused to show it


def test_a_cross_site_page_cannot_open_the_live_socket(chromium, server, attacker):
    canvas_id, owner = new_canvas(server, "Hijack")
    attacker.pages["/socket"] = f"""<!doctype html><script>
      window.results = new Promise((done) => {{
        const seen = [];
        const ws = new WebSocket('ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}?token={owner}');
        ws.onopen = () => {{ seen.push('open'); ws.send(JSON.stringify({{type: 'hello', token: '{owner}'}})); }};
        ws.onmessage = (e) => seen.push('message ' + e.data.slice(0, 40));
        ws.onclose = (e) => {{ seen.push('close ' + e.code); done(seen); }};
      }});
    </script>"""
    page = new_page(chromium)
    page.goto(attacker.url("/socket"))
    seen = page.evaluate("window.results")
    page.context.close()
    assert seen == ["close 1006"], seen  # never opened, nothing received
    text = log_text(server)
    assert f"WS /ws/canvases/{canvas_id} 403" in text and "forbidden_origin" in text


def test_the_client_runs_under_its_content_security_policy(chromium, server, tmp_path):
    """Home, a new canvas, the editor with rendered layers and previews, the share dialog, a share link opened
    by someone else, and an import: no CSP violation, no JavaScript error (screenshots in /tmp/shots-sec/)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    canvas_id, owner = new_canvas(server, "Under CSP")
    with server.client(owner) as client:
        for layer_id, prompt in (("sky", "a sky"), ("sea", "a sea")):
            body = {"command_id": layer_id, "command": {"type": "add_layer", "layer_id": layer_id,
                    "operation": "txt2img", "params": {"prompt": prompt, "width": 64, "height": 64, "steps": 2}}}  # fmt: skip
            assert client.post(f"/api/canvases/{canvas_id}/commands", json=body).status_code == 200
        workflow = tmp_path / "workflow.json"
        workflow.write_bytes(client.get(f"/api/canvases/{canvas_id}/workflow", params={"renders": "0"}).content)
    problems: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, base_url=server.url)
    context.set_default_timeout(30_000)
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) => (window.__csp = window.__csp || [])"
        ".push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));"
    )
    page = context.new_page()

    def watch(target: Any) -> None:
        target.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        target.on("console", lambda m: problems.append(f"console: {m.text}") if _csp_or_error(m) else None)

    watch(page)
    page.goto("/")
    page.locator("[data-testid=canvas-card]").first.wait_for()
    page.screenshot(path=str(SHOTS / "home.png"))
    page.click("[data-testid=new-canvas]")
    dialog = page.locator("[data-testid=new-canvas-dialog]")
    dialog.locator("input").fill("Made under CSP")
    dialog.locator("button[type=submit]").click()
    page.locator("[data-testid=connection][data-status=live]").wait_for()
    assert _violations(page) == []
    page.goto(f"/?canvas={canvas_id}")
    page.locator("[data-testid=connection][data-status=live]").wait_for()
    page.wait_for_function(  # a function, not a string: a string predicate is eval'd, which the CSP forbids
        "() => document.querySelectorAll('[data-testid=layer-row]').length === 2 && "
        "[...document.querySelectorAll('[data-testid=layer-row]')].every((r) => r.dataset.status === 'rendered')",
        timeout=90_000,
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "editor.png"))
    page.click("[data-testid=share]")
    share_dialog = page.locator("[data-testid=share-dialog]")
    share_dialog.locator("[data-testid=share-create]").click()
    link = share_dialog.locator("[data-testid=share-url]").input_value()
    assert re.search(rf"\?canvas={canvas_id}#token=[\w-]+$", link), link
    page.screenshot(path=str(SHOTS / "share-dialog.png"))
    assert _violations(page) == []

    # Someone else opens the link: the token leaves the address bar, and the editor works.
    other = chromium.new_context(viewport={"width": 1280, "height": 800})
    guest = other.new_page()
    watch(guest)
    guest.add_init_script("document.addEventListener('securitypolicyviolation', (e) => "
                          "(window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI));")  # fmt: skip
    guest.goto(link)
    guest.locator("[data-testid=connection][data-status=live]").wait_for()
    assert "token" not in guest.url and guest.locator("[data-testid=role]").inner_text() == "Editor"
    stored = guest.evaluate("localStorage.getItem('opendream.tokens')")
    assert link.rpartition("#token=")[2] in stored
    guest.screenshot(path=str(SHOTS / "share-link-opened.png"))
    assert _violations(guest) == []
    other.close()

    page.goto("/")
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=import-workflow]")
    chooser.value.set_files(str(workflow))
    page.wait_for_url(re.compile(r"canvas=(?!" + canvas_id + r")"))
    page.locator("[data-testid=connection][data-status=live]").wait_for()
    assert _violations(page) == []
    assert not problems, "\n".join(problems)
    # The watch sees what the policy blocks: an inline script, an inline style attribute.
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';
                             document.body.append(s); document.body.setAttribute('style', 'color: red'); }""")
    page.wait_for_timeout(200)
    seen = _violations(page)
    assert any(v.startswith("script-src") for v in seen) and any(v.startswith("style-src") for v in seen), seen
    assert page.evaluate("() => window.ran") is None
    assert any("inline script" in p for p in problems) and any("inline style" in p for p in problems), problems
    context.close()
    assert server.admin_token not in httpx.get(server.url + "/").text


def _csp_or_error(message: Any) -> bool:
    text = message.text
    return (
        "Content Security Policy" in text
        or "Refused to" in text
        or (message.type == "error" and "Failed to load resource" not in text)
    )


def _violations(page: Any) -> list[str]:
    return page.evaluate("window.__csp || []")


def test_share_links_made_by_the_server_carry_the_token_in_the_fragment(server):
    canvas_id, owner = new_canvas(server, "Fragment")
    link = share(server, canvas_id, owner, "viewer")
    assert link["path"] == f"/?canvas={canvas_id}#token={link['token']}"
