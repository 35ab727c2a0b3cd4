"""Files saved by the original Opendream (2023), converted layer by layer.

The fixtures in tests/fixtures/opendream2023/ were written by the original's own code (its server, canvas and
extensions, driven as its web UI and Python API drive them; only the model calls stubbed): see make_fixtures.py
there. The expectations below come from the calls that script makes and from the original's signatures.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.builtins import default_registry
from engine.imaging import mask_from_layer
from server.config import WorkflowLimits
from server.core.events import LayerAdded, LayerRendered
from server.workflow import InvalidWorkflow, Workflow, load_document, parse_workflow
from server.workflow.opendream import convert_opendream_2023

FIXTURES = Path(__file__).parent / "fixtures" / "opendream2023"
INPAINT = {"strength": 1.0, "scheduler": "pndm"}
DREAM = {"width": 512, "height": 512, "scheduler": "pndm"}

# original layer key -> (our layer id, operation, parents, params but `blob`, seed)
WEBUI_EVERY_OP = {
    "0": ("layer-0", "upload", [], {}, None),  # a JPEG upload, 100x75
    # dream(seed="7", batch_size="2", selected="1"): picture 1 of the batch, seeded 7 + 1
    "1": ("layer-1", "txt2img", [], {"prompt": "a lighthouse at dusk", "steps": 20, "guidance": 7.5, **DREAM}, 8),
    "2": ("layer-2", "mask", ["layer-1"], {"layer": "layer-1", "strokes": []}, None),
    # mask_and_inpaint(mask_layer="2", image_layer="1", ...): the mask first; the UI's defaults, 30 steps typed
    "3": (
        "layer-3",
        "inpaint",
        ["layer-1", "layer-2"],
        {"source": "layer-1", "mask": "layer-2", "prompt": "a red door", "steps": 30, "guidance": 11.0, **INPAINT},
        42,
    ),
    # the extension's fixed 10 steps and image guidance 1; no generator: seed 0
    "4": (
        "layer-4",
        "instruct_pix2pix",
        ["layer-0"],
        {
            "source": "layer-0",
            "instruction": "make it snowy",
            "steps": 10,
            "guidance": 7.5,
            "image_guidance": 1.0,
            "scheduler": "euler_a",
        },
        0,
    ),
    "5": (
        "layer-5",
        "controlnet_canny",
        ["layer-0"],
        {
            "control": "layer-0",
            "prompt": "a watercolour harbour",
            "low_threshold": 100,
            "high_threshold": 200,
            "steps": 20,
            "guidance": 7.5,
            "scheduler": "unipc",
        },
        3,
    ),
    "6": ("layer-6", "upload", [], {}, None),  # controlnet_openpose: its picture, with a warning
    "7": ("layer-7", "segment", ["layer-1"], {"source": "layer-1"}, None),  # sam: three masks, one call
    "8": ("layer-7.1", "layer_output", ["layer-7"], {"source": "layer-7", "index": 1}, None),
    "9": ("layer-7.2", "layer_output", ["layer-7"], {"source": "layer-7", "index": 2}, None),
    "10": (
        "layer-10",
        "inpaint",
        ["layer-1", "layer-7.1"],
        {"source": "layer-1", "mask": "layer-7.1", "prompt": "a green field", "steps": 20, "guidance": 11.0, **INPAINT},
        42,
    ),
    # drawn on layer 0 (the inpaint that uses it reads layer 0), though layer 10 is the one before it
    "11": ("layer-11", "mask", ["layer-0"], {"layer": "layer-0", "strokes": []}, None),
    "12": (
        "layer-12",
        "inpaint",
        ["layer-0", "layer-11"],
        {"source": "layer-0", "mask": "layer-11", "prompt": "a boat", "steps": 20, "guidance": 11.0, **INPAINT},
        5,
    ),
    "13": ("layer-13", "upload", [], {}, None),  # WebP
    "14": ("layer-14", "upload", [], {}, None),  # GIF, re-encoded as PNG
    "15": ("layer-15", "upload", [], {}, None),  # a third-party `dalle` extension: its picture, with a warning
    "16": ("layer-16", "txt2img", [], {"prompt": "a calm sea", "steps": 20, "guidance": 7.5, **DREAM}, 42),
}

WEBUI_SAM = {
    "0": ("layer-0", "upload", [], {}, None),
    "1": ("layer-1", "segment", ["layer-0"], {"source": "layer-0"}, None),
    "2": ("layer-1.1", "layer_output", ["layer-1"], {"source": "layer-1", "index": 1}, None),
    "3": ("layer-1.2", "layer_output", ["layer-1"], {"source": "layer-1", "index": 2}, None),
    "4": (
        "layer-4",
        "inpaint",
        ["layer-0", "layer-1.2"],
        {"source": "layer-0", "mask": "layer-1.2", "prompt": "a sunflower", "steps": 20, "guidance": 11.0, **INPAINT},
        42,
    ),
    # batch_size="3", selected="2": seed 42 + 2
    "5": (
        "layer-5",
        "inpaint",
        ["layer-4", "layer-1"],
        {"source": "layer-4", "mask": "layer-1", "prompt": "a wall", "steps": 20, "guidance": 11.0, **INPAINT},
        44,
    ),
}

PYTHON_API = {
    # dream("a cat"): no options at all, the signature's defaults (seed 42, 20 steps, guidance 7.5)
    "0": ("layer-0", "txt2img", [], {"prompt": "a cat", "steps": 20, "guidance": 7.5, **DREAM}, 42),
    # dream("a dog", "runwayml/stable-diffusion-v1-5", 5, "cpu", 3, 2): positional, seed 5 + selected 2
    "1": ("layer-1", "txt2img", [], {"prompt": "a dog", "steps": 20, "guidance": 7.5, **DREAM}, 7),
    "2": ("layer-2", "txt2img", [], {"prompt": "a bird", "steps": 30, "guidance": 6.5, **DREAM}, 9),
    # mask_and_inpaint(bird, cat, "a hat"): positional, the mask first; inpaint's own default guidance 11
    "3": (
        "layer-3",
        "inpaint",
        ["layer-0", "layer-2"],
        {"source": "layer-0", "mask": "layer-2", "prompt": "a hat", "steps": 20, "guidance": 11.0, **INPAINT},
        42,
    ),
    # every argument by keyword
    "4": (
        "layer-4",
        "inpaint",
        ["layer-0", "layer-2"],
        {"source": "layer-0", "mask": "layer-2", "prompt": "a scarf", "steps": 20, "guidance": 11.0, **INPAINT},
        3,
    ),
}

CASES = {"webui-every-op.json": WEBUI_EVERY_OP, "webui-sam.json": WEBUI_SAM, "python-api.json": PYTHON_API}


def original(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def imported(name: str) -> Workflow:
    limits = WorkflowLimits()
    return parse_workflow(load_document((FIXTURES / name).read_bytes(), limits), default_registry(), limits)


def picture(data_url: str) -> bytes:
    return base64.b64decode(data_url.split(";base64,", 1)[1])


def test_the_fixtures_were_written_by_the_original_code():
    assert (FIXTURES / "original" / "LICENSE").read_text().startswith("MIT License")
    layers = original("webui-every-op.json")
    assert {layer["op"] for layer in layers.values()} >= {
        "dream",
        "mask_and_inpaint",
        "load_image",
        "mask",
        "instruct_pix2pix",
        "controlnet_canny",
        "controlnet_openpose",
        "sam",
    }
    formats = {re.match(r"data:image/(\w+);", layer["image"]).group(1) for layer in layers.values()}
    assert formats == {"png", "jpeg", "webp", "gif"}
    assert "seed" not in original("python-api.json")["0"]["options"]


@pytest.mark.parametrize("name", list(CASES))
def test_every_layer_is_mapped_from_the_original_signature(name):
    expected, layers = CASES[name], original(name)
    workflow = imported(name)
    added = {e.data.layer_id: e.data for e in workflow.events if isinstance(e.data, LayerAdded)}
    renders = {e.data.layer_id: e.data for e in workflow.events if isinstance(e.data, LayerRendered)}
    assert len(added) == len(layers) == len(expected)
    for key, (layer_id, operation, parents, params, seed) in expected.items():
        layer = added[layer_id]
        assert (layer.operation, list(layer.parents), layer.seed) == (operation, parents, seed), key
        assert {k: v for k, v in layer.params.items() if k != "blob"} == params, key
        # the stored picture is this layer's render, as the original made it
        data = picture(layers[key]["image"])
        render = renders[layer_id]
        if not layers[key]["image"].startswith("data:image/gif"):
            assert render.output == hashlib.sha256(data).hexdigest(), key
        else:  # re-encoded as a PNG of the same pixels
            stored = Image.open(io.BytesIO(workflow.blobs[render.output]))
            assert stored.format == "PNG" and stored.size == Image.open(io.BytesIO(data)).size
            assert np.array_equal(
                np.array(stored.convert("RGB")), np.array(Image.open(io.BytesIO(data)).convert("RGB"))
            )
        assert render.output in workflow.blobs
        assert "blob" not in layer.params or layer.params["blob"] == render.output, key
        assert render.fingerprint["source"] == "opendream-2023"
        assert render.fingerprint["original"] == {k: v for k, v in layers[key].items() if k != "image"}, key
    # sam's further masks are the segment layer's further outputs
    for layer_id, render in renders.items():
        if added[layer_id].operation == "segment":
            outputs = [renders[f"{layer_id}.{i}"].output for i in range(1, len(render.extra_outputs) + 1)]
            assert list(render.extra_outputs) == outputs and len(outputs) == 2


def test_layers_we_cannot_run_are_their_pictures_with_one_warning_each():
    workflow = imported("webui-every-op.json")
    assert len(workflow.warnings) == 2
    assert workflow.warnings[0].startswith("layer 6 (controlnet_openpose): ")
    assert workflow.warnings[1].startswith("layer 15 (dalle): this server has no operation 'dalle'")
    names = {e.data.layer_id: e.data.name for e in workflow.events if isinstance(e.data, LayerAdded)}
    assert names["layer-6"].startswith("controlnet_openpose") and names["layer-15"].startswith("dalle")
    flagged = {e.data.layer_id for e in workflow.events if isinstance(e.data, LayerRendered)
               and e.data.fingerprint.get("picture_only")}  # fmt: skip
    assert flagged == {"layer-6", "layer-15"}
    assert imported("webui-sam.json").warnings == imported("python-api.json").warnings == []


def test_arguments_the_original_could_not_have_taken_are_a_warning_not_a_refusal():
    layers = original("python-api.json")
    layers["1"]["params"] = [*layers["1"]["params"], 1, 2, 3, 4]  # more positional arguments than dream takes
    layers["2"]["options"]["num_steps"] = 500  # more than we run
    layers["3"]["params"][0] = "-1"  # a layer that was never on the canvas
    converted = convert_opendream_2023(layers)
    assert [w.split(":")[0] for w in converted["warnings"]] == [
        "layer 1 (dream)",
        "layer 2 (dream)",
        "layer 3 (mask_and_inpaint)",
    ]
    assert "num_steps 500" in converted["warnings"][1] and "'-1'" in converted["warnings"][2]
    limits = WorkflowLimits()
    parse_workflow(converted, default_registry(), limits)  # still a valid workflow


def test_a_layer_without_a_usable_picture_is_named():
    layers = original("webui-sam.json")
    layers["4"]["image"] = "data:image/png;base64," + base64.b64encode(b"not a picture").decode()
    with pytest.raises(InvalidWorkflow, match=r"layer '4' \('mask_and_inpaint'\): image is not readable"):
        convert_opendream_2023(layers)


def test_palette_bmp_and_cmyk_pictures_are_re_encoded():
    layers = original("webui-sam.json")
    for key, (fmt, mode) in {"0": ("BMP", "RGB"), "1": ("TIFF", "L"), "4": ("JPEG", "CMYK"), "5": ("PNG", "P")}.items():
        image = Image.open(io.BytesIO(picture(layers[key]["image"]))).convert(mode)
        out = io.BytesIO()
        image.save(out, format=fmt)
        layers[key]["image"] = f"data:image/{fmt.lower()};base64," + base64.b64encode(out.getvalue()).decode()
    converted = convert_opendream_2023(layers)
    for encoded in converted["blobs"].values():
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        assert image.format in {"PNG", "JPEG"} and image.mode in {"RGB", "RGBA", "L"}
    limits = WorkflowLimits()
    parse_workflow(converted, default_registry(), limits)


def test_an_imported_inpaint_re_rendered_keeps_the_pixels_outside_its_mask(tmp_path):
    """Layer 12 inpaints the JPEG upload (100x75) inside a mask drawn on it: rendered again by our engine, every
    pixel outside the mask is the upload's."""
    from engine.models.loader import ModelManager, ModelOptions
    from engine.render import Renderer

    workflow = imported("webui-every-op.json")
    added = {e.data.layer_id: e.data for e in workflow.events if isinstance(e.data, LayerAdded)}
    renderer = Renderer(
        ModelManager("builtin:tiny", ModelOptions(device="cpu", models_dir=tmp_path)), default_registry()
    )

    def render(layer_id: str, inputs: dict) -> Image.Image:
        layer = added[layer_id]
        params = {**layer.params, "steps": 2} if layer.operation == "inpaint" else layer.params
        return renderer.render(
            layer.operation, params, layer.seed, inputs, blob_reader=workflow.blobs.__getitem__
        ).images[0]

    source = render("layer-0", {})
    mask = render("layer-11", {"layer": source})
    inpainted = render("layer-12", {"source": source, "mask": mask})
    assert inpainted.size == source.size == (100, 75)
    outside = np.array(mask_from_layer(mask, source.size)) == 0
    assert 0.2 < outside.mean() < 0.95
    assert np.array_equal(np.array(inpainted.convert("RGB"))[outside], np.array(source.convert("RGB"))[outside])


def test_the_cli_import_prints_the_events_it_stored_and_the_warnings(tmp_path):
    import subprocess
    import sys

    workflow = imported("webui-every-op.json")
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "workflow", "import", str(FIXTURES / "webui-every-op.json"),
         "--data", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"({len(workflow.events)} events stored)" in result.stdout
    assert result.stderr.count("opendream: warning: layer ") == 2
    assert "layer 6 (controlnet_openpose)" in result.stderr and "layer 15 (dalle)" in result.stderr


def test_a_mask_no_inpaint_uses_binds_to_the_nearest_earlier_layer_of_its_size():
    layers = original("webui-every-op.json")
    del layers["12"]  # the inpaint that read layer 0 with mask 11
    converted = convert_opendream_2023(layers)
    added = {e["payload"]["layer_id"]: e["payload"] for e in converted["events"] if e["type"] == "layer.added"}
    assert added["layer-11"]["params"]["layer"] == "layer-0"  # 100x75, like the mask; layers 4 to 10 are not
