"""Layers in space (issue #18): the document frame and each layer's placement are facts of the log (events
`canvas.resized`, `layer.transformed`, undoable), and one function flattens the document exactly as the editor
shows it: offset, scaled, rotated, flipped and partly outside layers, compared pixel for pixel with arrays
worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.blend import to_image
from engine.document import Placed, flatten
from server.core.commands import (
    AddLayer,
    MalformedCommand,
    RecordRender,
    ResizeCanvas,
    Restore,
    TransformLayer,
    Undo,
    parse_envelope,
)
from server.core.snapshot import decode_state, encode_state
from server.core.state import Placement
from server.service import CanvasService

pytestmark = pytest.mark.anyio

RED, BLUE, CLEAR = (255, 0, 0, 255), (0, 0, 255, 255), (0, 0, 0, 0)


def flat(width: int, height: int, colour: tuple[int, ...]) -> Image.Image:
    return Image.new("RGBA", (width, height), colour)


def pixels(size: tuple[int, int], *layers: Placed, background: str | None = None) -> np.ndarray:
    return np.asarray(to_image(flatten(size, layers, background)))


def test_an_offset_layer_lands_where_it_is_placed_and_what_lies_outside_is_cut():
    out = pixels((8, 6), Placed(flat(4, 3, RED), x=6, y=-1))
    expected = np.zeros((6, 8, 4), dtype=np.uint8)
    expected[0:2, 6:8] = RED  # the 4 x 3 picture at (6, -1): its top row and right half are outside
    assert np.array_equal(out, expected)


def test_a_scaled_layer_covers_exactly_its_scaled_rectangle():
    out = pixels((10, 10), Placed(flat(2, 3, BLUE), x=1, y=2, scale=2.5))
    expected = np.zeros((10, 10, 4), dtype=np.uint8)
    expected[2 : 2 + 7, 1 : 1 + 5] = BLUE  # 5 x 7.5: pixel centres inside [1, 6) x [2, 9.5)
    assert np.array_equal(out, expected)


def test_rotation_and_flip_turn_the_picture_about_its_centre():
    picture = flat(4, 2, RED)
    picture.putpixel((0, 0), BLUE)  # a marked top-left corner
    turned = pixels((4, 4), Placed(picture, x=0, y=1, rotation=90))
    # 4 x 2 turned a quarter clockwise about its centre (2, 2): now 2 wide, 4 tall, at x 1..3, y 0..4,
    # and the marked corner is at the top right
    assert np.array_equal(turned[:, 0], np.zeros((4, 4), dtype=np.uint8))
    assert tuple(turned[0, 2]) == BLUE and tuple(turned[3, 1]) == RED and tuple(turned[0, 1]) == RED
    flipped = pixels((4, 2), Placed(picture, flip_x=True))
    assert tuple(flipped[0, 3]) == BLUE and tuple(flipped[0, 0]) == RED


def test_opacity_and_background_compose_as_the_editor_draws_them():
    out = pixels((2, 1), Placed(flat(1, 1, RED), opacity=0.5, x=1), background="#0000ff")
    assert tuple(out[0, 0]) == BLUE
    assert tuple(out[0, 1]) == (128, 0, 128, 255)


async def add_rendered(
    service: CanvasService, canvas_id: str, layer_id: str, width: int, height: int, operation: str = "generate"
) -> None:
    await service.execute(canvas_id, AddLayer(layer_id=layer_id, operation=operation), "ada", f"add-{layer_id}")
    state = await service.state(canvas_id)
    await service.execute(canvas_id, RecordRender(layer_id=layer_id, revision=state.layers[layer_id].revision,
                                                  output="a" * 64, width=width, height=height, fingerprint={},
                                                  duration_ms=1.0, cache_key="k"), "engine")  # fmt: skip


async def test_the_document_takes_the_first_pictures_size_then_resize_and_transform_are_undoable(service):
    canvas_id = (await service.create_canvas("Space", "ada")).canvas_id
    await add_rendered(service, canvas_id, "a", 64, 48)
    await add_rendered(service, canvas_id, "b", 128, 128)
    state = await service.state(canvas_id)
    assert (state.width, state.height, state.background) == (64, 48, None)
    assert state.layers["a"].placement == Placement()
    await service.execute(canvas_id, ResizeCanvas(width=160, height=48, background="#FFFFFF"), "ada", "grow")
    await service.execute(canvas_id, TransformLayer(layer_id="b", x=96, y=-8, scale=0.5), "ada", "move")
    state = await service.state(canvas_id)
    assert (state.width, state.height, state.background) == (160, 48, "#ffffff")
    assert state.layers["b"].placement == Placement(96, -8, 0.5)
    assert state.to_json()["document"] == {"width": 160, "height": 48, "background": "#ffffff"}
    assert state.to_json()["layers"][1]["placement"]["x"] == 96
    assert decode_state(encode_state(state)) == state, "snapshots keep the frame and the places"
    await service.execute(canvas_id, Undo(), "ada", "undo-move")
    assert (await service.state(canvas_id)).layers["b"].placement == Placement()
    await service.execute(canvas_id, Undo(), "ada", "undo-grow")
    assert ((await service.state(canvas_id)).width, (await service.state(canvas_id)).height) == (64, 48)


async def test_a_restore_brings_back_places_and_the_frame(service):
    canvas_id = (await service.create_canvas("Space", "ada")).canvas_id
    await add_rendered(service, canvas_id, "a", 64, 64)
    await service.execute(canvas_id, TransformLayer(layer_id="a", x=10, y=20, rotation=-270), "ada", "move")
    placed = await service.state(canvas_id)
    assert placed.layers["a"].placement.rotation == 90, "angles are kept in 0..360"
    await service.execute(canvas_id, ResizeCanvas(width=256, height=64), "ada", "grow")
    await service.execute(canvas_id, TransformLayer(layer_id="a", x=0, y=0), "ada", "back")
    await service.execute(canvas_id, Restore(version=placed.version), "ada", "restore")
    state = await service.state(canvas_id)
    assert state.layers["a"].placement == placed.layers["a"].placement
    assert (state.width, state.height) == (64, 64)


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"type": "resize_canvas", "width": 4, "height": 64}, "command.resize_canvas.width"),
        ({"type": "resize_canvas", "width": 64, "height": 100_000}, "command.resize_canvas.height"),
        # each side allowed, together more than an uploaded picture may hold (the composite flattens it whole)
        ({"type": "resize_canvas", "width": 8192, "height": 8192}, "command.resize_canvas"),
        ({"type": "resize_canvas", "width": 64, "height": 64, "background": "red"}, "command.resize_canvas.background"),
        ({"type": "transform_layer", "layer_id": "a", "x": float("nan"), "y": 0}, "command.transform_layer.x"),
        ({"type": "transform_layer", "layer_id": "a", "x": 0, "y": 1e9}, "command.transform_layer.y"),
        ({"type": "transform_layer", "layer_id": "a", "x": 0, "y": 0, "scale": 0}, "command.transform_layer.scale"),
        (
            {"type": "transform_layer", "layer_id": "a", "x": 0, "y": 0, "rotation": 1e6},
            "command.transform_layer.rotation",
        ),
    ],
)
def test_a_malformed_frame_or_placement_is_refused_naming_the_field(command, field):
    with pytest.raises(MalformedCommand) as info:
        parse_envelope({"command_id": "c", "command": command})
    assert info.value.field == field


async def test_a_crop_stays_where_it_was_cut_and_an_img2img_lies_over_its_source(store):
    from engine.builtins import default_registry
    from server.core.decide import Decider

    service = CanvasService(store, Decider(default_registry(), new_seed=lambda: 1))
    await service.start()
    try:
        await crop_and_img2img(service)
    finally:
        await service.stop()


async def crop_and_img2img(service: CanvasService) -> None:
    canvas_id = (await service.create_canvas("Places", "ada")).canvas_id
    await add_rendered(service, canvas_id, "photo", 256, 128, operation="txt2img")
    await service.execute(canvas_id, TransformLayer(layer_id="photo", x=40, y=10, scale=2), "ada", "place")
    crop = {"source": "photo", "x": 64, "y": 32, "width": 64, "height": 64}
    result = await service.execute(canvas_id, AddLayer(layer_id="cut", operation="crop", params=crop), "ada", "cut")
    assert [event.type for event in result.events] == ["layer.added", "layer.transformed"], "one command, one undo"
    state = await service.state(canvas_id)
    assert state.layers["cut"].placement == Placement(40 + 2 * 64, 10 + 2 * 32, 2)
    again = {"source": "photo", "prompt": "at dusk"}
    await service.execute(canvas_id, AddLayer(layer_id="dusk", operation="img2img", params=again), "ada", "dusk")
    assert (await service.state(canvas_id)).layers["dusk"].placement == Placement(40, 10, 2)
    await service.execute(canvas_id, Undo(), "ada", "undo")
    assert "dusk" not in (await service.state(canvas_id)).layers


async def test_a_crop_of_a_turned_picture_keeps_its_pixels_where_they_were():
    """Flattened, the crop of a quarter-turned picture covers exactly the pixels it was cut from."""
    photo = Image.fromarray(np.arange(8 * 6 * 4, dtype=np.uint8).reshape(6, 8, 4) | 0x80)
    where = Placement(5, 3, 1, 90)
    region = (2, 1, 4, 3)  # x, y, width, height inside the photo
    centre = where.to_document(8, 6, region[0] + region[2] / 2, region[1] + region[3] / 2)
    cut = photo.crop((region[0], region[1], region[0] + region[2], region[1] + region[3]))
    placed = Placed(cut, x=centre[0] - region[2] / 2, y=centre[1] - region[3] / 2, rotation=90)
    whole = pixels((20, 20), Placed(photo, x=5, y=3, rotation=90))
    part = pixels((20, 20), placed)
    covered = part[..., 3] > 0
    assert covered.sum() == region[2] * region[3]
    assert np.array_equal(part[covered], whole[covered])
