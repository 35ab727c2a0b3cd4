from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.builtins import builtin_operations, default_registry
from engine.errors import CapabilityMissing, MissingInput, ModelUnavailable
from engine.models.loader import ModelManager, ModelOptions
from engine.operation import INPUT_KEY, WIDGET_KEY, InvalidParams, validate_params
from engine.render import Renderer


def picture(size: tuple[int, int] = (96, 80), mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", size, (30, 60, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=(240, 200, 40))
    return image.convert(mode)


def center_mask(size: tuple[int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    return mask


SOURCE = picture()
CASES: dict[str, tuple[dict[str, Any], dict[str, Image.Image]]] = {
    "txt2img": ({"prompt": "a red cat", "width": 128, "height": 64, "steps": 3}, {}),
    "img2img": ({"source": "layer-1", "prompt": "a red cat", "strength": 0.7, "steps": 4}, {"source": SOURCE}),
    "inpaint": (
        {"source": "layer-1", "mask": "layer-2", "prompt": "a red cat", "steps": 3},
        {"source": SOURCE, "mask": center_mask(SOURCE.size)},
    ),
    "outpaint": (  # a frame of the source's size, the source placed to its right: its left part is empty
        {"frame": {"x": 0, "y": 0, "width": 96, "height": 80}, "layers": [{"layer": "layer-1", "x": 40}], "steps": 3},
        {"layers.0.layer": SOURCE},
    ),
    "instruct_pix2pix": (
        {"source": "layer-1", "instruction": "make it winter", "steps": 3},
        {"source": SOURCE.convert("RGBA")},
    ),
    "controlnet_canny": ({"control": "layer-1", "prompt": "a red cat", "steps": 3}, {"control": SOURCE}),
    "controlnet": (  # without a library: a folder next to the model's (tests/engine/test_engine_companions.py)
        {"controlnet": "controlnet_canny", "control": "layer-1", "prompt": "a red cat", "steps": 3},
        {"control": SOURCE},
    ),
}


def test_every_builtin_has_a_case() -> None:
    # the generating ones; the editing operations are covered in tests/extensions
    assert set(CASES) == {op.name for op in builtin_operations() if op.needs_model}


@pytest.mark.parametrize("name", sorted(CASES))
def test_operation_renders(renderer: Renderer, name: str) -> None:
    params, inputs = CASES[name]
    steps: list[tuple[int, int]] = []
    result = renderer.render(name, params, 42, inputs, progress=lambda step, total: steps.append((step, total)))
    assert len(result.images) == 1
    image = result.images[0]
    expected = (params["width"], params["height"]) if name == "txt2img" else SOURCE.size
    assert image.size == expected
    assert image.mode == "RGB"
    assert np.asarray(image).std() > 1.0  # a picture, not a flat fill
    assert steps and steps[-1][0] == steps[-1][1]
    assert [step for step, _ in steps] == list(range(1, len(steps) + 1))
    assert result.seed == 42 and result.duration_ms > 0
    assert result.fingerprint["model"] == "builtin:tiny"


def test_img2img_progress_counts_the_steps_it_runs(renderer: Renderer) -> None:
    steps: list[tuple[int, int]] = []
    params = {"source": "a", "prompt": "x", "strength": 0.5, "steps": 4}
    renderer.render("img2img", params, 1, {"source": SOURCE}, progress=lambda s, t: steps.append((s, t)))
    assert steps == [(1, 2), (2, 2)]


def test_inputs_may_be_keyed_by_layer_id(renderer: Renderer) -> None:
    params = {"source": "layer-9", "prompt": "x", "steps": 2}
    by_id = renderer.render("img2img", params, 3, {"layer-9": SOURCE}).images[0]
    by_param = renderer.render("img2img", params, 3, {"source": SOURCE}).images[0]
    assert by_id.tobytes() == by_param.tobytes()


def test_missing_input_is_an_error(renderer: Renderer) -> None:
    with pytest.raises(MissingInput, match="source"):
        renderer.render("img2img", {"source": "layer-1", "prompt": "x", "steps": 2}, 1, {})


def test_inpaint_keeps_unmasked_pixels(renderer: Renderer) -> None:
    params, inputs = CASES["inpaint"]
    image = np.asarray(renderer.render("inpaint", params, 5, inputs).images[0])
    source = np.asarray(SOURCE)
    outside = np.asarray(inputs["mask"]) == 0
    assert (image[outside] == source[outside]).all()
    assert (image[~outside] != source[~outside]).any()


def test_inpaint_mask_from_alpha(renderer: Renderer) -> None:
    mask = Image.new("RGBA", SOURCE.size, (0, 0, 0, 0))
    mask.paste((255, 255, 255, 255), (0, 0, 20, 20))
    params = {"source": "a", "mask": "b", "prompt": "x", "steps": 2}
    image = np.asarray(renderer.render("inpaint", params, 5, {"source": SOURCE, "mask": mask}).images[0])
    assert (image[30:, 30:] == np.asarray(SOURCE)[30:, 30:]).all()


def test_controlnet_follows_the_control_image(renderer: Renderer) -> None:
    params = {"control": "c", "prompt": "a red cat", "steps": 2}
    circle = renderer.render("controlnet_canny", params, 9, {"control": picture((96, 96))}).images[0]
    blank = renderer.render("controlnet_canny", params, 9, {"control": Image.new("RGB", (96, 96))}).images[0]
    weak = renderer.render(
        "controlnet_canny", {**params, "conditioning_scale": 0.0}, 9, {"control": picture((96, 96))}
    ).images[0]
    weak_blank = renderer.render(
        "controlnet_canny", {**params, "conditioning_scale": 0.0}, 9, {"control": Image.new("RGB", (96, 96))}
    ).images[0]
    assert circle.tobytes() != blank.tobytes()
    assert weak.tobytes() == weak_blank.tobytes()  # no conditioning: the control image cannot matter


def test_odd_sizes_come_back_at_the_source_size(renderer: Renderer) -> None:
    odd = picture((101, 67))
    result = renderer.render("img2img", {"source": "a", "prompt": "x", "steps": 2}, 1, {"source": odd})
    assert result.images[0].size == (101, 67)


def test_model_without_extras_falls_back(tiny_dir: Path, tmp_path: Path, models_dir: Path) -> None:
    plain = tmp_path / "plain-sd"
    plain.mkdir()
    for name in ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (plain / name).symlink_to(tiny_dir / name)
    manager = ModelManager(str(plain), ModelOptions(device="cpu", hash_cache=models_dir / "hashes.json"))
    renderer = Renderer(manager)
    params, inputs = CASES["inpaint"]
    assert renderer.render("inpaint", params, 1, inputs).images[0].size == SOURCE.size  # 4-channel UNet
    assert manager.get().pipeline("inpaint").unet.config.in_channels == 4
    assert not manager.get().supports("instruct_pix2pix")
    for name in ("instruct_pix2pix", "controlnet_canny"):
        params, inputs = CASES[name]
        with pytest.raises(CapabilityMissing, match=name):
            renderer.render(name, params, 1, inputs)
    fingerprint = renderer.fingerprint()
    assert fingerprint["model"] == str(plain)
    assert fingerprint["model_hash"] != Renderer(ModelManager(str(tiny_dir))).fingerprint()["model_hash"]


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("txt2img", {"width": 100}, "width"),
        ("txt2img", {"width": 32}, "width"),
        ("txt2img", {"height": 4096}, "height"),
        ("txt2img", {"steps": 0}, "steps"),
        ("txt2img", {"steps": 151}, "steps"),
        ("txt2img", {"guidance": 31}, "guidance"),
        ("txt2img", {"scheduler": "lms"}, "scheduler"),
        ("txt2img", {"prompt": "x" * 2001}, "prompt"),
        ("txt2img", {"sampler": "ddim"}, "sampler"),
        ("img2img", {"prompt": "x"}, "source"),
        ("img2img", {"source": "a", "strength": 0}, "strength"),
        ("img2img", {"source": "a", "strength": 1.5}, "strength"),
        ("inpaint", {"source": "a"}, "mask"),
        ("inpaint", {"source": "a", "mask": ""}, "mask"),
        ("instruct_pix2pix", {"source": "a", "image_guidance": -1}, "image_guidance"),
        ("controlnet_canny", {"control": "a", "low_threshold": 200, "high_threshold": 100}, "high_threshold"),
        ("controlnet_canny", {"control": "a", "conditioning_scale": 3}, "conditioning_scale"),
    ],
)
def test_invalid_params_are_rejected(name: str, params: dict[str, Any], field: str) -> None:
    operation = default_registry().get(name)
    assert operation is not None
    with pytest.raises(InvalidParams) as caught:
        validate_params(operation, params)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_renderer_rejects_invalid_params(renderer: Renderer) -> None:
    with pytest.raises(InvalidParams, match="steps"):
        renderer.render("txt2img", {"steps": 0}, 1, {})
    with pytest.raises(KeyError):
        renderer.render("no_such_op", {}, 1, {})


def test_defaults_validate_and_inputs_are_reported() -> None:
    validated = validate_params(default_registry().get("inpaint"), {"source": "l1", "mask": "l2"})  # type: ignore[arg-type]
    assert validated.inputs == {"source": "l1", "mask": "l2"}
    assert validated.params["steps"] == 30 and validated.params["scheduler"] == "dpm++"


@pytest.mark.parametrize("operation", [op for op in builtin_operations() if op.needs_model], ids=lambda op: op.name)
def test_json_schema_has_widget_markers(operation: Any) -> None:
    description = operation.describe()
    properties = description["params_schema"]["properties"]
    for field, kind in description["inputs"].items():
        assert properties[field][INPUT_KEY] == kind
    textareas = [name for name, schema in properties.items() if schema.get(WIDGET_KEY) == "textarea"]
    assert textareas, "every built-in takes a prompt or an instruction"
    assert description["uses_seed"] and description["needs_model"]
    if "width" in properties:
        assert properties["width"]["multipleOf"] == 8
    assert set(properties["scheduler"]["enum"]) >= {"ddim", "euler", "euler_a", "dpm++", "pndm"}
    assert properties["steps"]["minimum"] == 1 and properties["steps"]["maximum"] == 150
    assert description["params_schema"]["additionalProperties"] is False


def test_canny_edges() -> None:
    from engine.imaging import canny

    edges = np.asarray(canny(picture((96, 96)), 100, 200))
    assert edges.shape == (96, 96, 3)
    assert set(np.unique(edges)) == {0, 255}
    assert (edges[48, :20] == 0).all()  # flat background has no edges
    assert edges[:, :, 0].sum() > 0
    assert not np.asarray(canny(Image.new("RGB", (32, 32), "gray"), 100, 200)).any()


def test_inpaint_with_missing_model_folder_fails_clearly(tmp_path: Path) -> None:
    shutil.rmtree(tmp_path, ignore_errors=True)
    renderer = Renderer(ModelManager(str(tmp_path / "nowhere")))
    params, inputs = CASES["txt2img"]
    with pytest.raises(ModelUnavailable, match="not found: no such file or folder"):
        renderer.render("txt2img", params, 1, inputs)


def test_memory_options(model_options: ModelOptions, tiny_dir: Path) -> None:
    from dataclasses import replace

    options = replace(model_options, attention_slicing=True, vae_tiling=True)
    renderer = Renderer(ModelManager("builtin:tiny", options))
    params = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2}
    result = renderer.render("txt2img", params, 1, {})
    assert result.images[0].size == (64, 64)
    assert result.fingerprint["attention_slicing"] and result.fingerprint["vae_tiling"]
    assert renderer.models.get().pipeline("txt2img").vae.use_tiling
