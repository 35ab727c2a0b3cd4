"""Make the editor screenshot for the README: a real server, a canvas with a few layers, two people on it.

    .venv/bin/python -m tests.browser.readme_screenshot [docs/screenshot.png]

The built-in model paints noise, so the picture underneath is an uploaded, procedurally painted harbour; the
layers over it (a painted mask, an inpaint, an adjustment) are real operations rendered by the server.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from playwright.sync_api import expect, sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS, VIEWPORT, chromium_executable
from tests.browser.support import Canvas, identity, stage_centre
from tests.server_process import ServerProcess


def harbour(width: int = 512, height: int = 384) -> bytes:
    """A dusk harbour: gradient sky, a low sun, hills, a lighthouse, a sea with glints."""
    y = np.linspace(0, 1, height)[:, None, None]
    sky_top, sky_low = np.array([34, 40, 92]), np.array([250, 150, 90])
    sky = sky_top + (sky_low - sky_top) * (y**1.6)
    image = np.broadcast_to(sky, (height, width, 3)).copy()
    horizon = int(height * 0.62)
    xs = np.arange(width)[None, :]
    ys = np.arange(height)[:, None]
    sun = np.exp(-(((xs - width * 0.68) ** 2 + (ys - horizon + 38) ** 2) / (2 * 40.0**2)))
    image += sun[..., None] * np.array([255, 210, 140]) * 0.7
    sea_y = np.linspace(0, 1, height - horizon)[:, None, None]
    sea = np.array([40, 52, 96]) + (np.array([14, 20, 44]) - np.array([40, 52, 96])) * sea_y
    image[horizon:] = np.broadcast_to(sea, (height - horizon, width, 3))
    rng = np.random.default_rng(4)
    for _ in range(260):  # glints of the sun on the water
        gy = rng.integers(horizon + 2, height)
        spread = 18 + (gy - horizon) * 0.9
        gx = int(width * 0.68 + rng.normal(0, spread))
        length = rng.integers(4, 16)
        image[gy, max(0, gx - length) : min(width, gx + length)] = [255, 196, 130]
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(picture)
    hills = [(0, horizon)] + [
        (x, horizon - 34 - 22 * np.sin(x / 57.0) - 9 * np.sin(x / 13.0)) for x in range(0, 230, 6)
    ]
    draw.polygon([*hills, (230, horizon)], fill=(24, 22, 44))
    draw.rectangle([96, horizon - 118, 108, horizon - 60], fill=(232, 226, 214))  # the lighthouse
    draw.rectangle([96, horizon - 100, 108, horizon - 92], fill=(190, 60, 60))
    draw.rectangle([96, horizon - 76, 108, horizon - 68], fill=(190, 60, 60))
    draw.polygon([(94, horizon - 118), (110, horizon - 118), (102, horizon - 128)], fill=(60, 40, 50))
    draw.ellipse([95, horizon - 124, 109, horizon - 112], fill=(255, 236, 160))
    draw.polygon(
        [(330, horizon + 30), (380, horizon + 30), (370, horizon + 40), (340, horizon + 40)], fill=(20, 18, 30)
    )
    draw.line([(355, horizon + 30), (355, horizon - 8)], fill=(20, 18, 30), width=2)
    draw.polygon([(356, horizon - 6), (356, horizon + 26), (376, horizon + 26)], fill=(238, 226, 210))
    picture = picture.filter(ImageFilter.GaussianBlur(0.6))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def cliffs(width: int = 320, height: int = 384) -> bytes:
    """Night cliffs beside the harbour: the same horizon, a darker sky, a lit window."""
    y = np.linspace(0, 1, height)[:, None, None]
    sky = np.array([30, 34, 82]) + (np.array([236, 140, 96]) - np.array([30, 34, 82])) * (y**1.8)
    image = np.broadcast_to(sky, (height, width, 3)).copy()
    horizon = int(height * 0.62)
    sea_y = np.linspace(0, 1, height - horizon)[:, None, None]
    image[horizon:] = np.broadcast_to(np.array([40, 52, 96]) + (np.array([14, 20, 44]) - np.array([40, 52, 96]))
                                      * sea_y, (height - horizon, width, 3))  # fmt: skip
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(picture)
    ridge = [
        (x, horizon - 70 - 60 * np.exp(-(((x - 230) / 70.0) ** 2)) - 8 * np.sin(x / 9.0))
        for x in range(0, width + 6, 6)
    ]
    draw.polygon([(0, horizon), *ridge, (width, horizon + 40), (0, horizon + 40)], fill=(18, 16, 34))
    draw.rectangle([214, horizon - 150, 246, horizon - 118], fill=(40, 34, 50))  # a cottage on the cliff
    draw.polygon([(210, horizon - 150), (250, horizon - 150), (230, horizon - 170)], fill=(60, 36, 44))
    draw.rectangle([226, horizon - 140, 234, horizon - 130], fill=(255, 214, 120))
    picture = picture.filter(ImageFilter.GaussianBlur(0.6))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def moon(size: int = 96) -> bytes:
    """A pale moon with a soft edge, on transparency (placed, scaled and turned over the sky)."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(xx - size / 2, yy - size / 2) / (size / 2)
    alpha = np.clip((1.0 - r) * 6, 0, 1)
    shade = 1.0 - 0.25 * np.clip((xx - size * 0.3) / size, 0, 1)
    rgb = np.stack([250 * shade, 244 * shade, 220 * shade], axis=-1)
    rgba = np.concatenate([rgb, alpha[..., None] * 255], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def upload_picture(canvas: Canvas, layer_id: str, name: str, png: bytes) -> None:
    blob = canvas.http.post(f"/api/blobs?canvas={canvas.id}", content=png, headers={"content-type": "image/png"})
    canvas.command({"type": "add_layer", "layer_id": layer_id, "operation": "upload",
                    "params": {"blob": blob.json()["sha256"]}, "name": name})  # fmt: skip


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "data") as server:
        canvas = Canvas(server, "Harbour at dusk", user="u-ada")
        upload = canvas.http.post(f"/api/blobs?canvas={canvas.id}", content=harbour(),
                                  headers={"content-type": "image/png"}).json()  # fmt: skip
        canvas.command(
            {
                "type": "add_layer",
                "layer_id": "harbour",
                "operation": "upload",
                "params": {"blob": upload["sha256"]},
                "name": "Harbour (painted)",
            }
        )
        canvas.txt2img("sketch", "a stormy sky, oil on canvas", width=512, height=384, steps=6)
        canvas.command({"type": "set_visibility", "layer_id": "sketch", "visible": False})
        canvas.command(
            {
                "type": "add_layer",
                "layer_id": "warm",
                "operation": "adjust",
                "params": {"source": "harbour", "brightness": 1.05, "contrast": 1.1, "saturation": 1.25},
                "name": "Warmer",
            }
        )
        strokes = [{"points": [[300, 250], [330, 262], [372, 266], [410, 258]], "radius": 22}]
        canvas.command(
            {
                "type": "add_layer",
                "layer_id": "boat-mask",
                "operation": "mask",
                "params": {"layer": "warm", "strokes": strokes},
                "name": "Boat area",
            }
        )
        canvas.command(
            {
                "type": "add_layer",
                "layer_id": "boat",
                "operation": "inpaint",
                "params": {
                    "source": "warm",
                    "mask": "boat-mask",
                    "prompt": "a red sailboat at dusk, calm water",
                    "steps": 8,
                    "strength": 0.6,
                },
                "seed": 1234,
                "name": "Red sailboat",
            }
        )
        canvas.command({"type": "set_opacity", "layer_id": "boat", "opacity": 0.85})
        canvas.command({"type": "set_visibility", "layer_id": "boat-mask", "visible": False})
        # a composed canvas (issue #18): the document grown to the right, pictures placed in it
        canvas.command({"type": "resize_canvas", "width": 832, "height": 384})
        upload_picture(canvas, "cliffs", "Cliffs (painted)", cliffs())
        canvas.command({"type": "transform_layer", "layer_id": "cliffs", "x": 512, "y": 0})
        upload_picture(canvas, "moon", "Moon", moon())
        canvas.command(
            {"type": "transform_layer", "layer_id": "moon", "x": 600, "y": 40, "scale": 0.75, "rotation": 15}
        )
        canvas.wait_rendered("harbour", "sketch", "warm", "boat-mask", "boat", "cliffs", "moon", timeout=120)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
            pages = []
            for who in (
                identity("Ada", "#ff6392", "u-ada"),
                identity("Hokusai", "#17bebb", "u-hokusai"),
                identity("Frida", "#ffc914", "u-frida"),
            ):
                context = browser.new_context(viewport=VIEWPORT, base_url=server.url, device_scale_factor=1)
                context.add_init_script("".join(f"localStorage.setItem({k!r}, {v!r});" for k, v in who.items()))
                page = context.new_page()
                page.goto(canvas.path)
                expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
                pages.append(page)
            ada, hokusai, frida = pages
            hokusai.locator("[data-testid=layer-row][data-layer-id=warm]").click()
            x, y = stage_centre(hokusai)
            hokusai.mouse.move(x - 150, y - 70)
            hokusai.mouse.move(x - 140, y - 60, steps=4)
            x, y = stage_centre(frida)
            frida.mouse.move(x + 60, y + 120)
            frida.mouse.move(x + 70, y + 110, steps=4)
            ada.locator("[data-testid=layer-row][data-layer-id=boat]").click()
            expect(ada.locator("[data-testid=remote-cursor]")).to_have_count(2)
            ada.wait_for_timeout(400)
            out.parent.mkdir(parents=True, exist_ok=True)
            ada.screenshot(path=str(out))
            browser.close()
    print(f"saved {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "test-output/screenshots/readme.png"))
