"""The composite under a frame (issue #18): `flatten` gives the document inside a frame as one picture, exactly
as the editor shows it there, so img2img, inpaint, ControlNet and instruct-pix2pix can read it; an operation
made from it lies at the frame (its place is the flatten layer's)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.blend import to_image
from engine.builtins import default_registry
from engine.document import Placed, flatten_region
from engine.render import Renderer
from server.core.commands import AddLayer, RecordRender, Undo, parse_envelope
from server.core.decide import Decider
from server.core.state import Placement
from server.service import CanvasService

FRAME = {"x": 40, "y": 8, "width": 96, "height": 64}


def pictures() -> dict[str, Image.Image]:
    rng = np.random.default_rng(3)
    sea = Image.fromarray(rng.integers(0, 256, (80, 120, 4), dtype=np.uint8) | np.uint8(0xFF), "RGBA")
    sun = Image.new("RGBA", (32, 32), (250, 200, 60, 255))
    return {"sea": sea, "sun": sun}


def placed_layers() -> list[dict[str, object]]:
    return [
        {"layer": "sea", "x": 0, "y": 0},
        {"layer": "sun", "x": 100, "y": 20, "scale": 1.5, "rotation": 30, "opacity": 0.8},
    ]


def test_flatten_is_the_document_inside_the_frame_exactly(renderer: Renderer) -> None:
    images = pictures()
    result = renderer.render("flatten", {"frame": FRAME, "layers": placed_layers()}, None, images).images[0]
    expected = to_image(flatten_region((FRAME["x"], FRAME["y"]), (FRAME["width"], FRAME["height"]), [
        Placed(images["sea"]), Placed(images["sun"], 0.8, 100, 20, 1.5, 30)]))  # fmt: skip
    assert result.size == (96, 64)
    assert np.array_equal(np.asarray(result.convert("RGBA")), np.asarray(expected))
    assert np.asarray(result.convert("RGBA"))[:, -1, 3].min() == 0, "what no picture covers stays transparent"


pytestmark = pytest.mark.anyio


async def test_an_img2img_of_the_frame_lies_at_the_frame(store) -> None:
    service = CanvasService(store, Decider(default_registry(), new_seed=lambda: 1))
    await service.start()
    try:
        canvas_id = (await service.create_canvas("Frame", "ada")).canvas_id
        await service.execute(canvas_id, AddLayer(layer_id="sea", operation="txt2img"), "ada", "sea")
        revision = (await service.state(canvas_id)).layers["sea"].revision
        await service.execute(canvas_id, RecordRender(layer_id="sea", revision=revision, output="a" * 64, width=120,
                                                      height=80, fingerprint={}, duration_ms=1.0, cache_key="k"),
                              "engine")  # fmt: skip
        flat = {"type": "add_layer", "layer_id": "under", "operation": "flatten",
                "params": {"frame": FRAME, "layers": [{"layer": "sea"}]}}  # fmt: skip
        envelope = parse_envelope({"command_id": "f", "command": flat})
        await service.execute(canvas_id, envelope.command, "ada", "f")
        over = AddLayer(layer_id="dusk", operation="img2img", params={"source": "under", "prompt": "at dusk"})
        await service.execute(canvas_id, over, "ada", "dusk")
        state = await service.state(canvas_id)
        assert state.layers["under"].placement == Placement(40, 8)
        assert state.layers["dusk"].placement == Placement(40, 8), "an img2img lies over its source"
        await service.execute(canvas_id, Undo(), "ada", "undo")
        assert "dusk" not in (await service.state(canvas_id)).layers
    finally:
        await service.stop()
