"""The operation API's extension points: nested and list inputs, blob parameters, fingerprints, JSON Schema."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import Field

from engine.blobs import ImageLimits, decode_image
from engine.builtins import builtin_operations, default_registry
from engine.context import RunContext
from engine.errors import InvalidBlob, MissingBlob, MissingInput, ModelUnavailable
from engine.models.loader import ModelHandle
from engine.operation import (
    BLOB_KEY,
    INPUT_KEY,
    WIDGET_KEY,
    BlobInput,
    InvalidParams,
    LayerInput,
    MaskInput,
    Operation,
    Params,
    blob_refs,
    input_refs,
    validate_params,
)
from engine.render import Renderer

SHA_A = "a" * 64
SHA_B = "b" * 64


class Item(Params):
    layer: str = LayerInput("one layer")
    matte: str | None = MaskInput(default=None)
    picture: str | None = BlobInput(default=None)
    weight: float = 1.0


class Group(Params):
    items: list[Item] = Field(default_factory=list)


class Nested(Operation):
    name = "nested"
    title = "Nested"

    class Params(Params):
        source: str = LayerInput()
        mask: str | None = MaskInput(default=None)
        items: list[Item] = Field(default_factory=list)
        pair: tuple[Item, Item] | None = None
        group: Group = Group()
        upload: str | None = BlobInput(default=None)

    def run(self, ctx: RunContext, inputs: Any, params: Any) -> Image.Image:
        return Image.new("L", (1, 1), len(inputs))


PARAMS = {
    "source": "s",
    "items": [{"layer": "i0", "matte": "m0"}, {"layer": "i1", "picture": SHA_A}],
    "pair": [{"layer": "p0"}, {"layer": "p1"}],
    "group": {"items": [{"layer": "g0"}]},
    "upload": SHA_B,
}


def test_input_refs_walk_nested_models_and_lists() -> None:
    assert input_refs(Nested, PARAMS) == {
        "source": "s",
        "items.0.layer": "i0",
        "items.0.matte": "m0",
        "items.1.layer": "i1",
        "pair.0.layer": "p0",
        "pair.1.layer": "p1",
        "group.items.0.layer": "g0",
    }
    assert blob_refs(Nested, PARAMS) == {"items.1.picture": SHA_A, "upload": SHA_B}
    assert input_refs(Nested, {"source": "s"}) == {"source": "s"}  # nulls and empty lists give nothing


def test_validate_params_reports_nested_inputs_and_blobs() -> None:
    validated = validate_params(Nested, PARAMS)
    assert validated.inputs == input_refs(Nested, PARAMS)
    assert validated.blobs == blob_refs(Nested, PARAMS)
    assert validated.params["items"][1] == {"layer": "i1", "matte": None, "picture": SHA_A, "weight": 1.0}
    # a typed Params instance is accepted as well
    assert input_refs(Nested, Nested.Params.model_validate(PARAMS)) == validated.inputs


def test_declared_paths_and_top_level_fields() -> None:
    assert Nested.input_fields() == {"source": "image", "mask": "mask"}  # unchanged: top level only
    assert Nested.input_paths() == {
        "source": "image",
        "mask": "mask",
        "items.*.layer": "image",
        "items.*.matte": "mask",
        "pair.*.layer": "image",
        "pair.*.matte": "mask",
        "group.items.*.layer": "image",
        "group.items.*.matte": "mask",
    }
    assert Nested.blob_paths() == ["items.*.picture", "pair.*.picture", "group.items.*.picture", "upload"]


def test_nested_fields_keep_their_schema_markers() -> None:
    schema = Nested.Params.model_json_schema()
    item = schema["$defs"]["Item"]["properties"]
    assert item["layer"][INPUT_KEY] == "image"
    assert item["matte"][INPUT_KEY] == "mask"
    assert item["picture"][BLOB_KEY] is True and item["picture"][WIDGET_KEY] == "upload"
    assert schema["properties"]["upload"][BLOB_KEY] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"source": "s", "upload": "not-a-sha"}, "upload"),
        ({"source": "s", "upload": "A" * 64}, "upload"),  # names are lowercase hex
        ({"source": "s", "items": [{"layer": ""}]}, "items.0.layer"),
        ({"source": "s", "items": [{"layer": "x", "picture": "b" * 63}]}, "items.0.picture"),
        ({"source": "s", "items": [{"layer": "x", "extra": 1}]}, "items.0.extra"),
    ],
)
def test_nested_errors_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        input_refs(Nested, params)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_renderer_passes_nested_inputs_by_path(renderer: Renderer) -> None:
    renderer.registry.register(Nested)
    seen: dict[str, Any] = {}

    class Spy(Nested):
        name = "spy"

        def run(self, ctx: RunContext, inputs: Any, params: Any) -> Image.Image:
            seen.update(inputs)
            return Image.new("L", (1, 1))

    renderer.registry.register(Spy)
    images = {path: Image.new("L", (1, 1), i) for i, path in enumerate(input_refs(Nested, PARAMS))}
    renderer.render("spy", PARAMS, None, images)
    assert seen.keys() == images.keys()
    # keyed by layer id works too
    by_id = {layer_id: images[path] for path, layer_id in input_refs(Nested, PARAMS).items()}
    seen.clear()
    renderer.render("spy", PARAMS, None, by_id)
    assert seen.keys() == images.keys()
    del by_id["g0"]
    with pytest.raises(MissingInput, match=r"group\.items\.0\.layer"):
        renderer.render("spy", PARAMS, None, by_id)


# --- blobs ---------------------------------------------------------------------------------------------------


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def context(reader: Any = None) -> RunContext:
    return RunContext(model=ModelHandle("builtin:tiny"), blob_reader=reader)


def test_read_blob() -> None:
    data = png(Image.new("RGB", (3, 2), (1, 2, 3)))
    sha = hashlib.sha256(data).hexdigest()
    assert context({sha: data}.__getitem__).read_blob(sha) == data
    assert context({sha: data}.__getitem__).read_image(sha).getpixel((2, 1)) == (1, 2, 3)
    with pytest.raises(MissingBlob, match="no blob reader"):
        context().read_blob(sha)
    with pytest.raises(MissingBlob, match="does not exist"):
        context({}.__getitem__).read_blob(sha)
    with pytest.raises(InvalidBlob, match="do not hash"):
        context({sha: data + b"x"}.__getitem__).read_blob(sha)
    with pytest.raises(InvalidBlob, match="sha256"):
        context({}.__getitem__).read_blob("../../etc/passwd")


def test_decoding_uses_explicit_limits() -> None:
    data = png(Image.new("RGB", (64, 32)))
    assert decode_image(data).size == (64, 32)
    with pytest.raises(InvalidBlob, match="largest side"):
        decode_image(data, ImageLimits(max_side=63))
    with pytest.raises(InvalidBlob, match="2048 pixels"):
        decode_image(data, ImageLimits(max_pixels=2000))
    with pytest.raises(InvalidBlob, match="bytes"):
        decode_image(data, ImageLimits(max_bytes=10))
    with pytest.raises(InvalidBlob, match="accepted format"):
        decode_image(b"GIF89a" + bytes(100))
    with pytest.raises(InvalidBlob, match="damaged or truncated"):
        decode_image(data[: len(data) // 2])


def test_decoding_applies_exif_orientation() -> None:
    image = Image.new("RGB", (4, 2), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert decode_image(buffer.getvalue()).size == (2, 4)


# --- fingerprints and the model ------------------------------------------------------------------------------


def test_edit_operations_never_touch_the_model(renderer: Renderer, missing_model: Path) -> None:
    result = renderer.render("blank", {"width": 4, "height": 3, "colour": "#102030"}, 7, {})
    assert result.images[0].getpixel((0, 0)) == (16, 32, 48)
    assert result.seed is None  # no seed for operations that draw no noise
    cropped = renderer.render(
        "crop", {"source": "b", "x": 1, "y": 1, "width": 2, "height": 2}, None, {"source": result.images[0]}
    )
    assert cropped.images[0].size == (2, 2)
    assert not renderer.models.get().loaded
    assert not missing_model.exists()
    fingerprint = renderer.fingerprint_for("crop")
    assert cropped.fingerprint == fingerprint
    assert fingerprint["engine"] == "opendream-edit" and fingerprint["operation_version"] == 1
    assert {"pillow", "numpy"} <= fingerprint.keys() and "model" not in fingerprint
    with pytest.raises(ModelUnavailable):  # the model-bound operations do need it
        renderer.fingerprint_for("txt2img")
    with pytest.raises(KeyError):
        renderer.fingerprint_for("nope")


def test_edit_fingerprint_does_not_depend_on_the_model(renderer: Renderer, tmp_path: Path) -> None:
    from engine.models.loader import ModelManager, ModelOptions

    other = Renderer(ModelManager(str(tmp_path / "other-model"), ModelOptions(device="cpu")))
    for name in ("upload", "blank", "crop", "resize", "adjust", "composite", "flatten", "mask", "magic_wand"):
        assert renderer.fingerprint_for(name) == other.fingerprint_for(name)


def test_upload_render_reads_blobs_from_the_reader(renderer: Renderer, blobs: Any) -> None:
    sha = blobs.put_image(Image.new("RGBA", (5, 4), (9, 8, 7, 128)))
    result = renderer.render("upload", {"blob": sha}, None, {})
    assert result.images[0].mode == "RGBA" and result.images[0].getpixel((4, 3)) == (9, 8, 7, 128)
    # render(blob_reader=) overrides the renderer's default
    with pytest.raises(MissingBlob):
        renderer.render("upload", {"blob": sha}, None, {}, blob_reader={}.__getitem__)


def test_operations_must_return_images(renderer: Renderer) -> None:
    class Nothing(Operation):
        name = "nothing"
        title = "Nothing"

        class Params(Params):
            pass

        def run(self, ctx: RunContext, inputs: Any, params: Any) -> Any:
            return []

    renderer.registry.register(Nothing)
    with pytest.raises(TypeError, match="non-empty list"):
        renderer.render("nothing", {}, None, {})


# --- JSON Schema of every built-in ---------------------------------------------------------------------------

EDITING = ["upload", "blank", "crop", "resize", "adjust", "composite", "flatten", "mask", "magic_wand", "segment"]


def test_editing_builtins_are_registered() -> None:
    registry = default_registry()
    assert set(EDITING) <= set(registry.names())
    # plus layer_output, which the server adds for the further images of a multi-output render
    assert {op.name for op in builtin_operations() if not op.needs_model} == {*EDITING, "layer_output"}
    for name in EDITING:
        operation = registry.get(name)
        assert operation is not None and not operation.uses_seed
        assert operation.category in {"edit", "mask", "input"}


@pytest.mark.parametrize("operation", builtin_operations(), ids=lambda op: op.name)
def test_every_builtin_describes_itself(operation: type[Operation]) -> None:
    description = operation.describe()
    schema = description["params_schema"]
    assert description["title"] and description["description"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    for path, kind in description["input_paths"].items():
        *parents, leaf = path.split(".")
        properties = schema["properties"] if not parents else schema["$defs"][_def_of(schema, parents)]["properties"]
        assert properties[leaf][INPUT_KEY] == kind
    assert validate_params(operation, _minimal(operation)).params  # defaults fill in the rest


def _def_of(schema: dict[str, Any], parents: list[str]) -> str:
    node = schema["properties"][parents[0]]
    ref = node.get("items", node).get("$ref") or node["anyOf"][0]["items"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def _minimal(operation: type[Operation]) -> dict[str, Any]:
    required = {
        "img2img": {"source": "a"},
        "inpaint": {"source": "a", "mask": "b"},
        "instruct_pix2pix": {"source": "a"},
        "controlnet_canny": {"control": "a"},
        "controlnet": {"controlnet": "controlnet/canny", "control": "a"},
        "upload": {"blob": SHA_A},
        "crop": {"source": "a"},
        "resize": {"source": "a"},
        "adjust": {"source": "a"},
        "composite": {"layers": [{"layer": "a"}]},
        "mask": {"layer": "a"},
        "magic_wand": {"source": "a", "x": 0, "y": 0},
        "segment": {"source": "a"},
        "layer_output": {"source": "a"},
    }
    return required.get(operation.name, {})


def _properties(name: str) -> dict[str, Any]:
    operation = default_registry().get(name)
    assert operation is not None
    return operation.Params.model_json_schema()


def test_editing_schemas() -> None:
    upload = _properties("upload")["properties"]["blob"]
    assert upload[BLOB_KEY] is True and upload["pattern"] == "^[0-9a-f]{64}$" and upload[WIDGET_KEY] == "upload"

    blank = _properties("blank")["properties"]
    assert blank["width"]["minimum"] == 1 and blank["width"]["maximum"] == 4096 and blank["width"]["default"] == 512
    assert blank["colour"]["default"] == "#ffffff" and blank["colour"][WIDGET_KEY] == "colour"

    crop = _properties("crop")
    assert crop["properties"]["source"][INPUT_KEY] == "image" and crop["required"] == ["source"]
    assert crop["properties"]["x"]["minimum"] == 0

    adjust = _properties("adjust")["properties"]
    for factor in ("brightness", "contrast", "saturation"):
        assert adjust[factor]["default"] == 1.0 and adjust[factor]["minimum"] == 0 and adjust[factor]["maximum"] == 4

    composite = _properties("composite")
    item = composite["$defs"]["CompositeItem"]["properties"]
    assert item["layer"][INPUT_KEY] == "image"
    assert item["opacity"] == {
        "default": 1.0,
        "description": item["opacity"]["description"],
        "maximum": 1.0,
        "minimum": 0.0,
        "title": "Opacity",
        "type": "number",
    }
    assert item["blend_mode"]["enum"] == ["normal", "multiply", "screen", "overlay", "darken", "lighten"]
    assert composite["properties"]["layers"]["minItems"] == 1
    assert default_registry().get("composite").input_paths() == {"layers.*.layer": "image"}  # type: ignore[union-attr]

    mask = _properties("mask")
    assert mask["properties"]["layer"][INPUT_KEY] == "image"
    assert mask["properties"]["blob"][BLOB_KEY] is True
    stroke = mask["$defs"]["Stroke"]["properties"]
    assert stroke["radius"]["exclusiveMinimum"] == 0 and stroke["erase"]["default"] is False

    wand = _properties("magic_wand")["properties"]
    assert (
        wand["tolerance"]["maximum"] == 255
        and wand["tolerance"]["default"] == 32
        and wand["contiguous"]["default"] is True
    )

    segment = default_registry().get("segment")
    assert segment is not None and segment.multiple_outputs


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("blank", {"colour": "red"}, "colour"),
        ("blank", {"colour": "#12345"}, "colour"),
        ("blank", {"colour": "#1234567"}, "colour"),
        ("blank", {"width": 0}, "width"),
        ("blank", {"height": 5000}, "height"),
        ("upload", {"blob": "x" * 64}, "blob"),
        ("upload", {}, "blob"),
        ("crop", {"source": "a", "x": -1}, "x"),
        ("crop", {"source": "a", "width": 0}, "width"),
        ("resize", {"source": "a", "height": 4097}, "height"),
        ("adjust", {"source": "a", "contrast": -0.1}, "contrast"),
        ("adjust", {"source": "a", "saturation": 4.5}, "saturation"),
        ("composite", {"layers": []}, "layers"),
        ("composite", {"layers": [{"layer": "a", "opacity": 1.5}]}, "layers.0.opacity"),
        ("composite", {"layers": [{"layer": "a"}, {"layer": "b", "blend_mode": "dissolve"}]}, "layers.1.blend_mode"),
        ("mask", {"layer": "a", "strokes": [{"points": []}]}, "strokes.0.points"),
        ("mask", {"layer": "a", "strokes": [{"points": [[0, 0]], "radius": 0}]}, "strokes.0.radius"),
        ("mask", {"layer": "a", "strokes": [{"points": [[0, 1e9]]}]}, "strokes.0.points.0.1"),
        ("magic_wand", {"source": "a", "x": 0, "y": 0, "tolerance": 256}, "tolerance"),
        ("magic_wand", {"source": "a", "y": 0}, "x"),
        ("segment", {"source": "a", "grid": 0}, "grid"),
    ],
)
def test_invalid_editing_params_are_rejected(name: str, params: dict[str, Any], field: str) -> None:
    operation = default_registry().get(name)
    assert operation is not None
    with pytest.raises(InvalidParams) as caught:
        validate_params(operation, params)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_discovery_and_the_editing_operations_import_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, engine.discovery;"
        "engine.discovery.load_registry(entry_points=False);"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
