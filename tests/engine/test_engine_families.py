"""Model families are table entries (engine.models.families): the family is told from the files, each family's
pipelines render through the real diffusers classes, and what a model cannot run says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engine.errors import CapabilityMissing
from engine.models.families import FAMILIES, SD1, SDXL, detect_folder, model_capabilities
from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer

SMALL = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module")
def sdxl(model_options: ModelOptions) -> Renderer:
    return Renderer(ModelManager("builtin:tiny-sdxl", model_options))


def test_the_family_is_told_from_a_diffusers_folder(manager: ModelManager, sdxl: Renderer) -> None:
    assert detect_folder(manager.get()._resolve_path()) is SD1
    assert detect_folder(sdxl.models.get()._resolve_path()) is SDXL
    assert sdxl.models.get().family is SDXL and sdxl.fingerprint()["family"] == "sdxl"


def test_sd2_folders_by_their_text_encoder_and_prediction_type(tmp_path: Path) -> None:
    import json

    for prediction, expected in (("epsilon", "sd2"), ("v_prediction", "sd2-v")):
        folder = tmp_path / prediction
        (folder / "unet").mkdir(parents=True)
        (folder / "scheduler").mkdir()
        (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
        (folder / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 1024}))
        (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"prediction_type": prediction}))
        family = detect_folder(folder)
        assert family.name == expected
    assert FAMILIES["sd2-v"].native_size == 768 and FAMILIES["sdxl"].native_size == 1024


@pytest.mark.parametrize("operation", ["txt2img", "img2img", "inpaint"])
def test_sdxl_renders_through_its_own_pipelines(sdxl: Renderer, operation: str) -> None:
    source = Image.new("RGB", (64, 64), (90, 120, 200))
    params, inputs = {
        "txt2img": (SMALL, {}),
        "img2img": ({"source": "s", "prompt": "at dusk", "steps": 4}, {"source": source}),
        "inpaint": ({"source": "s", "mask": "m", "prompt": "a boat", "steps": 2},
                    {"source": source, "mask": Image.new("L", (64, 64), 255)}),
    }[operation]  # fmt: skip
    result = sdxl.render(operation, params, 7, inputs)
    assert result.images[0].size == (64, 64)
    handle = sdxl.models.get()
    kind = {"txt2img": "txt2img", "img2img": "img2img", "inpaint": "inpaint"}[operation]
    assert type(handle.pipeline(kind)).__name__ == SDXL.pipelines[kind]  # the family's own class


def test_what_a_model_cannot_run_says_why(sdxl: Renderer) -> None:
    family, capabilities = model_capabilities("builtin:tiny-sdxl")
    assert family is SDXL
    assert capabilities["txt2img"] is None and "controlnet_canny component" in capabilities["controlnet_canny"]
    with pytest.raises(CapabilityMissing, match="controlnet_canny"):
        sdxl.render("controlnet_canny", {"control": "c", "prompt": "x", "steps": 2}, 1,
                    {"control": Image.new("RGB", (64, 64))})  # fmt: skip
    assert model_capabilities("builtin:tiny")[1] == dict.fromkeys(capabilities, None)
