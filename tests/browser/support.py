"""Setting canvases up over HTTP (fast), so each browser test drives only the part of the UI it is about."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from PIL import Image
from playwright.sync_api import expect

from tests.server_process import ServerProcess


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


SMALL = {"width": 64, "height": 64, "steps": 2}
_ids = itertools.count(1)


class Canvas:
    def __init__(self, server: ServerProcess, name: str = "Test canvas", user: str = "setup") -> None:
        self.server = server
        with server.client() as admin:  # creating needs a token: the admin's
            created = admin.post("/api/canvases", json={"name": name}).json()
        self.id: str = created["id"]
        self.token: str = created["owner_token"]
        self.http = server.client(self.token, **{"x-opendream-user": user})

    @property
    def path(self) -> str:
        """The editor with the owner's token, as a share link carries it (in the fragment)."""
        return f"/?canvas={self.id}#token={self.token}"

    def command(self, command: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(
            f"/api/canvases/{self.id}/commands",
            json={"command_id": f"setup-{next(_ids)}-{self.id}", "command": command},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def txt2img(self, layer_id: str, prompt: str = "a lighthouse", **params: Any) -> str:
        self.command(
            {
                "type": "add_layer",
                "layer_id": layer_id,
                "operation": "txt2img",
                "params": {"prompt": prompt, **SMALL, **params},
                "seed": 7,
            }
        )
        return layer_id

    def mask(self, layer_id: str, on: str, strokes: list[dict[str, Any]] | None = None) -> str:
        strokes = strokes or [{"points": [[10, 10], [40, 40]], "radius": 6}]
        self.command(
            {
                "type": "add_layer",
                "layer_id": layer_id,
                "operation": "mask",
                "params": {"layer": on, "strokes": strokes},
            }
        )
        return layer_id

    def inpaint(self, layer_id: str, source: str, mask: str) -> str:
        self.command(
            {
                "type": "add_layer",
                "layer_id": layer_id,
                "operation": "inpaint",
                "params": {"source": source, "mask": mask, "prompt": "a boat", "steps": 2},
                "seed": 3,
            }
        )
        return layer_id

    def state(self, version: int | None = None) -> dict[str, Any]:
        query = f"?version={version}" if version else ""
        return self.http.get(f"/api/canvases/{self.id}/state{query}").json()

    def events(self) -> list[dict[str, Any]]:
        return self.http.get(f"/api/canvases/{self.id}/events").json()["events"]

    def layer(self, layer_id: str) -> dict[str, Any] | None:
        return next((layer for layer in self.state()["layers"] if layer["id"] == layer_id), None)

    def wait_rendered(self, *layer_ids: str, timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            state = self.state()
            layers = {layer["id"]: layer for layer in state["layers"]}
            failed = [i for i in layer_ids if layers.get(i, {}).get("status") == "failed"]
            assert not failed, f"layers failed to render: {[(i, layers[i]['error']) for i in failed]}"
            return state if all(layers.get(i, {}).get("status") == "rendered" for i in layer_ids) else None

        return wait_until(done, timeout, message=f"layers {layer_ids} to render")

    def share(self, role: str) -> dict[str, Any]:
        response = self.http.post(f"/api/canvases/{self.id}/shares", json={"role": role})
        assert response.status_code == 201, response.text
        return response.json()


def png_bytes(width: int = 48, height: int = 32, colour: tuple[int, int, int] = (30, 120, 220)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def identity(name: str, colour: str = "#17bebb", user: str | None = None) -> dict[str, str]:
    """localStorage that makes a browser context a given user."""
    user = user or f"u-{name.lower()}"
    return {"opendream.user": json.dumps({"id": user, "name": name, "colour": colour})}


def open_editor(pages: Any, path: str, storage: dict[str, str] | None = None) -> Any:
    page = pages.new(path, storage=storage)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    return page


def set_range(locator: Any, value: float) -> None:
    """Move a range input as a drag would: input events, then change."""
    locator.evaluate(
        "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', {bubbles: true}));"
        " el.dispatchEvent(new Event('change', {bubbles: true})); }",
        value,
    )


def stage_centre(page: Any) -> tuple[float, float]:
    box = page.locator("[data-testid=stage]").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def stage_pixel(page: Any, x: float | None = None, y: float | None = None) -> list[int]:
    """The RGBA of the stage canvas at a page position (its centre by default)."""
    return page.evaluate(
        """([x, y]) => {
            const c = document.querySelector('[data-testid=stage]');
            const r = c.getBoundingClientRect();
            const dpr = c.width / r.width;
            const px = x === null ? c.width / 2 : (x - r.left) * dpr;
            const py = y === null ? c.height / 2 : (y - r.top) * dpr;
            return Array.from(c.getContext('2d').getImageData(Math.floor(px), Math.floor(py), 1, 1).data);
        }""",
        [x, y],
    )


def rows(page: Any) -> Any:
    return page.locator("[data-testid=layer-row]")


def row(page: Any, layer_id: str) -> Any:
    return page.locator(f"[data-testid=layer-row][data-layer-id='{layer_id}']")
