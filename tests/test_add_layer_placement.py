"""A new layer's place in the same command (issue #18): `add_layer` may carry a placement (a txt2img in the
generation frame), and an outpaint lands at its frame; either way one command, one undo. An outpaint's frame
and pictures are refused with the field that is wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.builtins import default_registry
from server.core.commands import AddLayer, MalformedCommand, RecordRender, Redo, TransformLayer, Undo, parse_envelope
from server.core.decide import CommandRejected, Decider
from server.core.state import Placement
from server.service import CanvasService
from server.store.sql import SQLEventStore

pytestmark = pytest.mark.anyio

# What the editor sends (client/js): a txt2img placed in its generation frame, an outpaint of the frame.
TXT2IMG = {"type": "add_layer", "operation": "txt2img", "layer_id": "sky",
           "params": {"prompt": "a harbour", "width": 256, "height": 128}, "placement": {"x": 320, "y": 64}}  # fmt: skip
FRAME = {"x": 192, "y": 32, "width": 256, "height": 128}


def outpaint(layers: list[dict[str, Any]] | None = None, **frame: int) -> dict[str, Any]:
    under = [{"layer": "photo", "x": 0, "y": 0, "scale": 1, "rotation": 0, "flip_x": False, "flip_y": False,
              "opacity": 1}]  # fmt: skip
    return {"type": "add_layer", "operation": "outpaint", "layer_id": "more",
            "params": {"frame": {**FRAME, **frame}, "layers": under if layers is None else layers, "prompt": "more"}}  # fmt: skip


@pytest.fixture
async def service(store: SQLEventStore) -> AsyncIterator[CanvasService]:
    service = CanvasService(store, Decider(default_registry(), new_seed=lambda: 1))
    await service.start()
    yield service
    await service.stop()


async def canvas_with_photo(service: CanvasService) -> str:
    canvas_id = (await service.create_canvas("Harbour", "ada")).canvas_id
    await service.execute(canvas_id, AddLayer(layer_id="photo", operation="txt2img"), "ada", "photo")
    state = await service.state(canvas_id)
    await service.execute(canvas_id, RecordRender(layer_id="photo", revision=state.layers["photo"].revision,
                                                  output="a" * 64, width=256, height=128, fingerprint={},
                                                  duration_ms=1.0, cache_key="k"), "engine")  # fmt: skip
    return canvas_id


def command(raw: dict[str, Any]) -> Any:
    return parse_envelope({"command_id": "c", "command": raw}).command


async def test_a_txt2img_placed_in_its_frame_is_one_command_and_one_undo(service: CanvasService) -> None:
    canvas_id = await canvas_with_photo(service)
    result = await service.execute(canvas_id, command(TXT2IMG), "ada", "sky")
    assert [event.type for event in result.events] == ["layer.added", "layer.transformed"]
    assert (await service.state(canvas_id)).layers["sky"].placement == Placement(320, 64)
    await service.execute(canvas_id, Undo(), "ada", "undo")
    assert "sky" not in (await service.state(canvas_id)).layers, "one undo takes the layer and its place"
    assert "photo" in (await service.state(canvas_id)).layers
    await service.execute(canvas_id, Redo(), "ada", "redo")
    assert (await service.state(canvas_id)).layers["sky"].placement == Placement(320, 64)


async def test_a_placement_wins_over_the_place_of_the_input(service: CanvasService) -> None:
    canvas_id = await canvas_with_photo(service)
    await service.execute(canvas_id, TransformLayer(layer_id="photo", x=40, y=10), "ada", "move")
    raw = {"type": "add_layer", "operation": "img2img", "layer_id": "dusk", "params": {"source": "photo"},
           "placement": {"x": 8, "y": 16, "scale": 0.5, "rotation": -90, "flip_x": True}}  # fmt: skip
    await service.execute(canvas_id, command(raw), "ada", "dusk")
    assert (await service.state(canvas_id)).layers["dusk"].placement == Placement(8, 16, 0.5, 270, True)
    at_origin = {**TXT2IMG, "layer_id": "plain", "placement": {"x": 0, "y": 0}}
    result = await service.execute(canvas_id, command(at_origin), "ada", "plain")
    assert [event.type for event in result.events] == ["layer.added"], "the origin needs no transform"


async def test_an_outpaint_lands_at_its_frame(service: CanvasService) -> None:
    canvas_id = await canvas_with_photo(service)
    result = await service.execute(canvas_id, command(outpaint()), "ada", "more")
    assert [event.type for event in result.events] == ["layer.added", "layer.transformed"]
    state = await service.state(canvas_id)
    assert state.layers["more"].placement == Placement(192, 32)
    assert state.layers["more"].parents == ("photo",)
    await service.execute(canvas_id, Undo(), "ada", "undo")
    assert "more" not in (await service.state(canvas_id)).layers


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (outpaint(width=100), "invalid_params", "params.frame.width"),
        (outpaint(height=4096), "invalid_params", "params.frame.height"),
        (outpaint(width=32), "invalid_params", "params.frame.width"),
        (outpaint(x=10**7), "invalid_params", "params.frame.x"),
        (outpaint([{"layer": "ghost"}]), "unknown_layer", "params.layers.0.layer"),
        (outpaint([{"layer": "photo"}, {"layer": "photo", "opacity": 2}]), "invalid_params", "params.layers.1.opacity"),
        (outpaint([{"layer": "photo", "scale": 0}]), "invalid_params", "params.layers.0.scale"),
    ],
)
async def test_an_outpaint_is_refused_naming_the_field(service: CanvasService, raw: Any, code: str, field: str) -> None:
    canvas_id = await canvas_with_photo(service)
    with pytest.raises(CommandRejected) as info:
        await service.execute(canvas_id, command(raw), "ada", "bad")
    assert (info.value.code, info.value.field) == (code, field)
    assert "more" not in (await service.state(canvas_id)).layers


@pytest.mark.parametrize(
    ("placement", "field"),
    [
        ({"y": 0}, "command.add_layer.placement.x"),
        ({"x": 0, "y": float("inf")}, "command.add_layer.placement.y"),
        ({"x": 0, "y": 0, "scale": 100}, "command.add_layer.placement.scale"),
        ({"x": 0, "y": 0, "rotation": 720}, "command.add_layer.placement.rotation"),
        ({"x": 0, "y": 0, "skew": 1}, "command.add_layer.placement.skew"),
    ],
)
def test_a_malformed_placement_is_refused_naming_the_field(placement: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedCommand) as info:
        command({**TXT2IMG, "placement": placement})
    assert info.value.field == field


@pytest.mark.slow
async def test_an_outpaint_renders_through_the_queue_and_again_when_a_picture_under_it_changes(tmp_path) -> None:
    """End to end with builtin:tiny: the outpaint of a grown canvas keeps the picture's pixels and lands at its
    frame; a changed picture under it is a new render (its image is part of the cache key), not the old one."""
    import io

    from PIL import Image

    from engine.models.loader import ModelManager, ModelOptions
    from engine.render import Renderer
    from server.blobstore import LocalBlobStore
    from server.core.commands import ChangeParams, ResizeCanvas
    from server.render_queue import RenderQueue

    options = ModelOptions(device="cpu", models_dir=tmp_path / "models", hash_cache=tmp_path / "hashes.json")
    renderer = Renderer(ModelManager("builtin:tiny", options), default_registry())
    store = SQLEventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    service = CanvasService(store, Decider(default_registry()))
    blobs = LocalBlobStore(tmp_path / "blobs")
    queue = RenderQueue(service, store, blobs, default_registry(), lambda: renderer)
    await service.start()
    await queue.start()
    try:
        canvas_id = (await service.create_canvas("Wider", "ada")).canvas_id
        blank = {"width": 64, "height": 64, "colour": "#204080"}
        await service.execute(canvas_id, AddLayer(layer_id="photo", operation="blank", params=blank), "ada")
        await service.execute(canvas_id, ResizeCanvas(width=128, height=64), "ada")
        under = [{"layer": "photo", "x": 0, "y": 0, "scale": 1, "rotation": 0, "flip_x": False, "flip_y": False,
                  "opacity": 1}]  # fmt: skip
        params = {"frame": {"x": 32, "y": 0, "width": 96, "height": 64}, "layers": under, "steps": 2, "feather": 8}
        await service.execute(canvas_id, AddLayer(layer_id="more", operation="outpaint", params=params, seed=4), "ada")
        await queue.wait_idle()

        def picture() -> Image.Image:
            output = state.layers["more"].output
            assert output is not None
            return Image.open(io.BytesIO(blobs.get(output.sha256))).convert("RGB")

        state = await service.state(canvas_id)
        assert state.layers["more"].status == "rendered", state.layers["more"]
        assert state.layers["more"].placement == Placement(32, 0)
        assert picture().size == (96, 64) and picture().getpixel((10, 10)) == (0x20, 0x40, 0x80)
        await service.execute(canvas_id, ChangeParams(layer_id="photo", params={**blank, "colour": "#a0c020"}), "ada")
        await queue.wait_idle()
        state = await service.state(canvas_id)
        assert state.layers["more"].status == "rendered"
        assert picture().getpixel((10, 10)) == (0xA0, 0xC0, 0x20), "rendered again from the changed picture"
    finally:
        await queue.stop()
        await service.stop()
        store.close()
