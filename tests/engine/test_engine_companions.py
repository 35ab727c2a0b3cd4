"""Companion models by configuration (models.toml names a base model's inpainting UNet, ControlNet, VAE), checked
against the base's family, and the generic `controlnet` operation (engine.models.library, engine.models.loader,
engine.ops.controlnet)."""

from __future__ import annotations

import shutil
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from engine.errors import CapabilityMissing, ModelUnavailable
from engine.models import tiny
from engine.models.library import ModelLibrary
from engine.models.loader import ModelManager, ModelOptions
from engine.ops.controlnet import PREPROCESSORS, ControlNetParams
from engine.render import Renderer

CONTROL = {"controlnet": "controlnet/canny", "control": "c", "prompt": "a harbour", "steps": 2, "guidance": 1.0}


def _picture(size: tuple[int, int] = (64, 64), shape: str = "circle") -> Image.Image:
    image = Image.new("RGB", size, (30, 40, 60))
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse((12, 10, 52, 50), fill=(230, 200, 40))
    else:
        draw.rectangle((8, 28, 56, 40), fill=(40, 220, 90))
    return image


@pytest.fixture(scope="module")
def library_root(tmp_path_factory: pytest.TempPathFactory, model_options: ModelOptions) -> Path:
    """builtin:tiny without its extra folders as a checkpoint, its ControlNet under controlnet/, its inpainting
    UNet as a configured companion; a ControlNet made for the tiny SDXL; a second VAE; companions of the wrong
    family."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    root = tmp_path_factory.mktemp("companions")
    manager = ModelManager("builtin:tiny", model_options)
    sd1 = manager.get("builtin:tiny")._resolve_path()
    sdxl = manager.get("builtin:tiny-sdxl")._resolve_path()
    plain = shutil.ignore_patterns("unet_*", "controlnet_*")
    shutil.copytree(sd1, root / "checkpoints" / "tiny-sd1", ignore=plain)
    shutil.copytree(sd1, root / "other" / "tiny-sd1", ignore=plain)  # the same model, with another VAE
    shutil.copytree(sdxl, root / "checkpoints" / "tiny-xl")
    shutil.copytree(sd1 / tiny.CONTROLNET_CANNY, root / "controlnet" / "canny")
    shutil.copytree(sd1 / tiny.INPAINT_UNET, root / "companions" / "unet_inpaint")
    shutil.copytree(sd1 / tiny.PIX2PIX_UNET, root / "companions" / "unet_pix2pix")
    xl_unet = UNet2DConditionModel.from_pretrained(str(sdxl), subfolder="unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        ControlNetModel.from_unet(xl_unet).save_pretrained(root / "controlnet" / "xl")
        torch.manual_seed(4)
        AutoencoderKL(**tiny._VAE_CONFIG).save_pretrained(root / "vae" / "other")
    # the same ControlNets as single files with diffusers' keys (a hub repository's weights file on its own)
    for name in ("canny", "xl"):
        state = ControlNetModel.from_pretrained(str(root / "controlnet" / name)).state_dict()
        save_file(state, str(root / "controlnet" / f"{name}.safetensors"))
    (root / "models.toml").write_text(
        '[[model]]\nname = "sd1"\nspec = "checkpoints/tiny-sd1"\ninpaint = "companions/unet_inpaint"\n'
        'controlnet_canny = "controlnet/canny"\npix2pix = "companions/unet_pix2pix"\n\n'
        '[[model]]\nname = "sd1-vae"\nspec = "other/tiny-sd1"\nvae = "vae/other"\n\n'
        '[[model]]\nname = "xl"\nspec = "checkpoints/tiny-xl"\ninpaint = "companions/unet_inpaint"\n'
        'controlnet_canny = "controlnet/canny"\npix2pix = "controlnet/xl"\nvae = "vae/missing/folder"\n'
    )
    return root


@pytest.fixture(scope="module")
def library(library_root: Path) -> ModelLibrary:
    return ModelLibrary("builtin:tiny", library_root)


@pytest.fixture(scope="module")
def renderer(model_options: ModelOptions, library: ModelLibrary) -> Renderer:
    return Renderer(ModelManager("builtin:tiny", model_options), library=library)


def _control(renderer: Renderer, control: Image.Image, **params: object) -> np.ndarray:
    return np.asarray(renderer.render("controlnet", {**CONTROL, **params}, 5, {"control": control}).images[0])


def test_companions_are_listed_with_why_one_does_not_fit(library: ModelLibrary) -> None:
    listed = {entry["name"]: entry for entry in library.describe()}
    sd1 = listed["sd1"]
    assert sd1["usable"] and sd1["companions"]["inpaint"] == {
        "name": "companions/unet_inpaint",
        "usable": True,
        "problem": None,
    }
    assert sd1["capabilities"]["controlnet_canny"] is None  # the folder has none; the configured one serves
    assert sd1["capabilities"]["instruct_pix2pix"] is None
    assert "unet_pix2pix component" in listed["sd1-vae"]["capabilities"]["instruct_pix2pix"]
    assert listed["checkpoints/tiny-sd1"]["capabilities"]["controlnet"] is None
    assert listed["controlnet/canny"]["kind"] == "controlnet" and listed["controlnet/canny"]["usable"]
    xl = listed["xl"]["companions"]
    assert xl["inpaint"]["problem"] == (
        "inpaint companion was made for a model with 32-wide text embeddings; this model's are 64 wide: it belongs to "
        "another family"
    )
    assert not xl["controlnet_canny"]["usable"] and "another family" in xl["controlnet_canny"]["problem"]
    assert "is a controlnet entry, not a checkpoint" in xl["pix2pix"]["problem"]
    assert "no such file or folder" in xl["vae"]["problem"]
    assert listed["xl"]["usable"]  # the base model itself still is
    xl_spec = library.get("xl").spec
    assert library.companions_for(xl_spec) == {}
    assert set(library.companions_for(library.get("sd1").spec)) == {"unet_inpaint", "unet_pix2pix", "controlnet_canny"}


def test_an_unknown_companion_key_is_a_problem(tmp_path: Path, library_root: Path) -> None:
    (tmp_path / "models.toml").write_text(
        f'[[model]]\nname = "typo"\nspec = "{library_root / "checkpoints" / "tiny-sd1"}"\ninpainting = "x"\n'
    )
    problem = ModelLibrary("builtin:tiny", tmp_path).get("typo").problem
    assert problem is not None and "unknown keys inpainting" in problem


def test_the_generic_controlnet_renders_from_a_layer(renderer: Renderer) -> None:
    circle, bar = _picture(), _picture(shape="bar")
    plain = _control(renderer, circle)
    edges = _control(renderer, circle, preprocess="canny")
    assert plain.shape == (64, 64, 3) and plain.std() > 1.0
    assert not np.array_equal(plain, edges)  # the preprocessor matters
    assert not np.array_equal(plain, _control(renderer, bar))  # so does the control image
    assert np.array_equal(plain, _control(renderer, circle))  # and nothing else
    unsteered = _control(renderer, circle, conditioning_scale=0.0)
    assert np.array_equal(unsteered, _control(renderer, bar, conditioning_scale=0.0))


def test_the_controlnet_enters_the_fingerprint_and_is_kept_loaded(renderer: Renderer, library: ModelLibrary) -> None:
    result = renderer.render("controlnet", {**CONTROL, "model": "sd1"}, 5, {"control": _picture()})
    entry = result.fingerprint["controlnet"]
    assert entry["name"] == "controlnet/canny" and entry["sha256"].startswith("sha256:")
    assert renderer.fingerprint_for("controlnet", params={**CONTROL, "model": "sd1"})["controlnet"] == entry
    handle = renderer.models.get(library.get("sd1").spec)
    module = handle.controlnet("controlnet/canny")
    renderer.render("controlnet", {**CONTROL, "model": "sd1"}, 6, {"control": _picture()})
    assert handle.controlnet("controlnet/canny") is module  # loaded once
    with pytest.raises(ModelUnavailable, match="no controlnet named 'controlnet/nope'"):
        renderer.render("controlnet", {**CONTROL, "controlnet": "controlnet/nope"}, 5, {"control": _picture()})


def test_a_single_file_controlnet_paints_what_its_folder_paints(renderer: Renderer, library: ModelLibrary) -> None:
    assert library.get("controlnet/canny.safetensors", "controlnet").usable
    folder = _control(renderer, _picture(), preprocess="canny")
    single = _control(renderer, _picture(), preprocess="canny", controlnet="controlnet/canny.safetensors")
    assert np.array_equal(folder, single)
    with pytest.raises(CapabilityMissing, match=r"'controlnet/xl\.safetensors' was made for a model with 64-wide"):
        _control(renderer, _picture(), controlnet="controlnet/xl.safetensors")


def test_a_controlnet_of_another_family_is_refused(renderer: Renderer) -> None:
    with pytest.raises(CapabilityMissing) as refused:
        _control(renderer, _picture(), controlnet="controlnet/xl", model="sd1")
    assert str(refused.value) == (
        "ControlNet 'controlnet/xl' was made for a model with 64-wide text embeddings; this model's are 32 wide: "
        "use a ControlNet of its family"
    )
    with pytest.raises(CapabilityMissing, match="ControlNet 'controlnet/canny' was made for a model with 32-wide"):
        _control(renderer, _picture(), model="xl")


def test_a_configured_inpainting_companion_is_used(
    renderer: Renderer, model_options: ModelOptions, library: ModelLibrary, library_root: Path
) -> None:
    source = _picture()
    mask = Image.new("L", source.size, 0)
    mask.paste(255, (16, 16, 48, 48))
    params = {"source": "s", "mask": "m", "prompt": "a boat", "steps": 2, "model": "sd1"}
    configured = renderer.render("inpaint", params, 3, {"source": source, "mask": mask})
    handle = renderer.models.get(library.get("sd1").spec)
    assert handle.pipeline("inpaint").unet.config.in_channels == 9
    assert set(configured.fingerprint["companions"]) == {"unet_inpaint", "unet_pix2pix", "controlnet_canny"}
    # the same folder without a library: no companions, the 4-channel fallback
    bare = Renderer(ModelManager("builtin:tiny", model_options))
    fallback = bare.render(
        "inpaint",
        {**params, "model": str(library_root / "checkpoints" / "tiny-sd1")},
        3,
        {"source": source, "mask": mask},
    )
    assert "companions" not in fallback.fingerprint
    assert not np.array_equal(np.asarray(configured.images[0]), np.asarray(fallback.images[0]))
    # controlnet_canny runs on the configured ControlNet although the folder has no controlnet_canny/
    edges = renderer.render("controlnet_canny", {"control": "c", "steps": 2, "model": "sd1"}, 3, {"control": source})
    assert edges.images[0].size == source.size
    # and instruct_pix2pix on the configured UNet
    edited = renderer.render("instruct_pix2pix", {"source": "s", "steps": 2, "model": "sd1"}, 3, {"source": source})
    assert edited.images[0].size == source.size
    with pytest.raises(CapabilityMissing, match="unet_pix2pix"):
        renderer.render("instruct_pix2pix", {"source": "s", "steps": 2, "model": "sd1-vae"}, 3, {"source": source})


def test_a_configured_vae_replaces_the_models_own(renderer: Renderer) -> None:
    params = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}
    own = renderer.render("txt2img", {**params, "model": "sd1"}, 7, {})
    other = renderer.render("txt2img", {**params, "model": "sd1-vae"}, 7, {})
    assert not np.array_equal(np.asarray(own.images[0]), np.asarray(other.images[0]))
    assert "vae" in other.fingerprint["companions"]


def test_without_a_library_a_controlnet_is_a_folder(model_options: ModelOptions, library_root: Path) -> None:
    bare = Renderer(ModelManager("builtin:tiny", model_options))
    by_path = _control(bare, _picture(), controlnet=str(library_root / "controlnet" / "canny"))
    beside = _control(bare, _picture(), controlnet="controlnet_canny")  # builtin:tiny's own folder
    assert np.array_equal(by_path, beside)
    with pytest.raises(ModelUnavailable, match="not found"):
        _control(bare, _picture(), controlnet=str(library_root / "nowhere"))


def test_the_preprocessors_are_the_parameters_choices() -> None:
    annotation = ControlNetParams.model_fields["preprocess"].annotation
    assert set(typing.get_args(annotation)) == set(PREPROCESSORS)


@pytest.fixture(scope="module")
def single_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SD 1.x single file with its inpainting checkpoint (a single file too) as the companion, and one whose
    'inpainting' companion is a plain 4-channel checkpoint."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    from tests.engine.standins import build_stand_in

    root = tmp_path_factory.mktemp("single-files")
    with torch.random.fork_rng(devices=[]):
        base = build_stand_in(root / "build", "sd1")
        inpainting = build_stand_in(root / "build", "sd1", in_channels=9)
        torch.manual_seed(8)
        controlnet = ControlNetModel.from_unet(UNet2DConditionModel.from_pretrained(str(base.folder), subfolder="unet"))
        with torch.no_grad():  # a trained one's zero convolutions are not zero: make the control image matter
            for name, param in controlnet.named_parameters():
                if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")):
                    param.copy_(torch.randn_like(param) * 0.1)
    controlnet.save_pretrained(root / "controlnet" / "pose")
    save_file(_as_original_controlnet(controlnet.state_dict()), str(root / "controlnet" / "pose.safetensors"))
    (root / "checkpoints").mkdir()
    shutil.move(base.single_file, root / "checkpoints" / "sd1.safetensors")
    shutil.move(inpainting.single_file, root / "checkpoints" / "sd1-inpainting.safetensors")
    shutil.rmtree(root / "build")
    (root / "models.toml").write_text(
        '[[model]]\nname = "sd1"\nspec = "checkpoints/sd1.safetensors"\n'
        'inpaint = "checkpoints/sd1-inpainting.safetensors"\n\n'
        '[[model]]\nname = "wrong"\nspec = "checkpoints/sd1-inpainting.safetensors"\n'
        'inpaint = "checkpoints/sd1.safetensors"\n'
    )
    return root


def _as_original_controlnet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ControlNet's state dict in the original (lllyasviel/ControlNet, A1111) layout: its UNet half by diffusers'
    own conversion script, the rest renamed as in diffusers' reverse mapping (single_file_utils)."""
    import runpy

    from tests.engine.standins import SCRIPTS

    script = runpy.run_path(str(SCRIPTS / "convert_diffusers_to_original_stable_diffusion.py"))
    unet = {key: value for key, value in state.items() if not key.startswith("controlnet_")}
    unet.update(dict.fromkeys(("conv_norm_out.weight", "conv_norm_out.bias", "conv_out.weight", "conv_out.bias"),
                              torch.zeros(1)))  # fmt: skip
    converted = script["convert_unet_state_dict"](unet)  # a UNet's output layers, which a ControlNet has not
    converted = {key: value for key, value in converted.items() if not key.startswith(("out.0.", "out.2."))}
    blocks = sorted({int(key.split(".")[2]) for key in state if key.startswith("controlnet_cond_embedding.blocks.")})
    renames = {
        "controlnet_cond_embedding.conv_in.": "input_hint_block.0.",
        "controlnet_mid_block.": "middle_block_out.0.",
    }
    renames.update({f"controlnet_cond_embedding.blocks.{i}.": f"input_hint_block.{2 * (i + 1)}." for i in blocks})
    renames["controlnet_cond_embedding.conv_out."] = f"input_hint_block.{2 * (len(blocks) + 1)}."
    for key, value in state.items():
        if key.startswith("controlnet_down_blocks."):
            index, leaf = key.split(".")[1:]
            converted[f"zero_convs.{index}.0.{leaf}"] = value
        for old, new in renames.items():
            if key.startswith(old):
                converted[new + key[len(old) :]] = value
    return {f"control_model.{key}": value for key, value in converted.items()}


@pytest.fixture(scope="module")
def single_renderer(model_options: ModelOptions, single_files: Path) -> Renderer:
    return Renderer(ModelManager("builtin:tiny", model_options), library=ModelLibrary("builtin:tiny", single_files))


def test_a_single_file_inpainting_companion_lends_its_unet(single_renderer: Renderer) -> None:
    renderer = single_renderer
    library = renderer.library
    assert library is not None
    problem = library.get("wrong").companion_problems["inpaint"]
    assert problem == "inpaint companion is not an inpainting model: its UNet takes 4 input channels, not 9"
    source = _picture()
    mask = Image.new("L", source.size, 0)
    mask.paste(255, (16, 16, 48, 48))
    params = {"source": "s", "mask": "m", "prompt": "a boat", "steps": 2, "model": "sd1"}
    result = renderer.render("inpaint", params, 3, {"source": source, "mask": mask})
    assert result.images[0].size == source.size and "unet_inpaint" in result.fingerprint["companions"]
    handle = renderer.models.get(library.get("sd1").spec)
    unet = handle.pipeline("inpaint").unet
    assert unet.config.in_channels == 9 and unet is not handle.pipeline("txt2img").unet


def test_an_original_layout_controlnet_file_paints_what_its_folder_paints(single_renderer: Renderer) -> None:
    renderer = single_renderer
    assert renderer.library is not None and renderer.library.get("controlnet/pose.safetensors").usable
    params = {**CONTROL, "model": "sd1", "controlnet": "controlnet/pose"}
    folder = renderer.render("controlnet", params, 5, {"control": _picture()}).images[0]
    params["controlnet"] = "controlnet/pose.safetensors"
    single = renderer.render("controlnet", params, 5, {"control": _picture()}).images[0]
    assert np.array_equal(np.asarray(folder), np.asarray(single))
