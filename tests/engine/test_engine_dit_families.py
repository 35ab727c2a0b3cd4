"""SD 3 / 3.5 and FLUX.1 are table entries like the UNet families: told from their folders, rendered through
diffusers' real pipeline classes (tiny random-weight builds, engine.models.tiny_dit), deterministic for a seed,
and what they lack is listed unavailable with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.errors import CapabilityMissing
from engine.models.families import FLUX, SD3, ModelFamily, detect_folder, model_capabilities
from engine.models.loader import ModelManager, ModelOptions
from engine.preview import Previewer
from engine.render import Renderer
from engine.schedulers import SCHEDULER_NAMES, make_scheduler

FAMILIES: dict[str, ModelFamily] = {"sd3": SD3, "flux": FLUX}
SOURCE = Image.new("RGB", (80, 64), (90, 120, 200))
CASES: dict[str, tuple[dict[str, object], dict[str, Image.Image]]] = {
    "txt2img": ({"prompt": "a lighthouse", "width": 80, "height": 64, "steps": 2}, {}),
    "img2img": ({"source": "s", "prompt": "at dusk", "steps": 4, "strength": 0.5}, {"source": SOURCE}),
    "inpaint": ({"source": "s", "mask": "m", "prompt": "a boat", "steps": 2},
                {"source": SOURCE, "mask": Image.new("L", SOURCE.size, 255)}),
}  # fmt: skip


@pytest.fixture(scope="module")
def renderers(model_options: ModelOptions) -> dict[str, Renderer]:
    """One renderer per family, its tiny model built (and loaded) once for the module."""
    return {name: Renderer(ModelManager(f"builtin:tiny-{name}", model_options)) for name in FAMILIES}


@pytest.mark.parametrize("name", FAMILIES)
def test_the_family_is_told_from_the_built_folder(renderers: dict[str, Renderer], name: str) -> None:
    handle = renderers[name].models.get()
    folder = handle._resolve_path()
    assert detect_folder(folder) is FAMILIES[name]
    assert handle.family is FAMILIES[name] and renderers[name].fingerprint()["family"] == name
    config = json.loads((folder / "vae" / "config.json").read_text())
    assert config["latent_channels"] == FAMILIES[name].latent_channels == 16
    assert (config["scaling_factor"], config["shift_factor"]) == (FAMILIES[name].scaling_factor,
                                                                 FAMILIES[name].shift_factor)  # fmt: skip


def test_a_folder_is_told_by_its_transformer_when_the_pipeline_class_is_another(tmp_path: Path) -> None:
    for family in FAMILIES.values():
        folder = tmp_path / family.name
        (folder / "transformer").mkdir(parents=True)
        (folder / "model_index.json").write_text(json.dumps({"_class_name": "SomeCommunityPipeline",
                                                             "text_encoder_2": ["transformers", "X"]}))  # fmt: skip
        (folder / "transformer" / "config.json").write_text(json.dumps({"_class_name": family.denoiser_class}))
        assert detect_folder(folder) is family


@pytest.mark.parametrize("operation", CASES)
@pytest.mark.parametrize("name", FAMILIES)
def test_renders_through_the_familys_own_pipelines_deterministically(
    renderers: dict[str, Renderer], name: str, operation: str
) -> None:
    params, inputs = CASES[operation]
    renderer = renderers[name]
    first = renderer.render(operation, params, 7, inputs).images[0]
    again = renderer.render(operation, params, 7, inputs).images[0]
    other = renderer.render(operation, params, 8, inputs).images[0]
    assert first.size == (80, 64)
    assert first.tobytes() == again.tobytes() and first.tobytes() != other.tobytes()
    assert type(renderer.models.get().pipeline(operation)).__name__ == FAMILIES[name].pipelines[operation]


def test_every_sampler_name_is_a_flow_matching_scheduler_for_flow_families(renderers: dict[str, Renderer]) -> None:
    config = renderers["flux"].models.get().load()._base.scheduler.config
    for scheduler in SCHEDULER_NAMES:
        assert type(make_scheduler(scheduler, config, "flow")).__name__ == "FlowMatchEulerDiscreteScheduler"
    # the variants render img2img too (it needs FlowMatch's scale_noise)
    for scheduler in ("euler_a", "dpm++_karras"):
        params = {**CASES["img2img"][0], "scheduler": scheduler}
        assert renderers["sd3"].render("img2img", params, 1, CASES["img2img"][1]).images[0].size == (80, 64)


def test_flux_previews_unpack_its_packed_latents(renderers: dict[str, Renderer]) -> None:
    previews: list[Image.Image] = []
    params = {"prompt": "a lighthouse", "width": 128, "height": 64, "steps": 3}
    renderers["flux"].render("txt2img", params, 3, {}, preview=lambda step, total, p: previews.append(p.image))
    assert previews and all(image.size == (16, 8) for image in previews)  # the latent grid, width x height
    # a TAESD of another latent format (4 channels) is passed over for the linear factors, not a failed render
    from diffusers import AutoencoderTiny

    previewer = Previewer(lambda *_: None, "sd3", taesd=AutoencoderTiny(latent_channels=4))
    assert previewer.render(torch.zeros(1, 16, 8, 10)).size == (10, 8)


@pytest.mark.parametrize("name", FAMILIES)
def test_what_the_family_lacks_is_unavailable_with_the_reason(renderers: dict[str, Renderer], name: str) -> None:
    family, capabilities = model_capabilities(f"builtin:tiny-{name}")
    assert family is FAMILIES[name]
    assert capabilities["txt2img"] is None and capabilities["img2img"] is None and capabilities["inpaint"] is None
    for kind in ("instruct_pix2pix", "controlnet_canny"):
        assert capabilities[kind] == f"{family.title} has no {kind} pipeline"
    with pytest.raises(CapabilityMissing, match="has no controlnet_canny pipeline"):
        renderers[name].render("controlnet_canny", {"control": "c", "prompt": "x", "steps": 2}, 1,
                               {"control": Image.new("RGB", (64, 64))})  # fmt: skip
