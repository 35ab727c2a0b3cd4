from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.models import tiny
from engine.models.loader import ModelHandle, ModelOptions


def test_tiny_builds_bit_identical_weights(tiny_dir: Path, tmp_path: Path) -> None:
    again = tiny.ensure_tiny_model(tmp_path / "again")
    first, second = tiny.hash_files(tiny_dir), tiny.hash_files(again)
    assert first == second
    assert any(name.endswith(".safetensors") for name in first)
    manifest = json.loads((again / tiny.MANIFEST_NAME).read_text())
    assert manifest["files"] == second
    assert manifest["build_version"] == tiny.BUILD_VERSION


def test_finished_build_is_reused(tiny_dir: Path) -> None:
    before = (tiny_dir / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    assert tiny.ensure_tiny_model(tiny_dir) == tiny_dir
    assert time.perf_counter() - started < 0.5
    assert (tiny_dir / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == before


def test_unfinished_build_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "model"
    (target / "unet").mkdir(parents=True)
    (target / "unet" / "junk").write_text("half-written")
    tiny.ensure_tiny_model(target)
    assert tiny.read_manifest(target) is not None
    assert not (target / "unet" / "junk").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folders left behind


def test_folder_is_a_regular_diffusers_model(tiny_dir: Path) -> None:
    import huggingface_hub.constants
    from diffusers import ControlNetModel, DiffusionPipeline, UNet2DConditionModel

    assert huggingface_hub.constants.HF_HUB_OFFLINE
    pipe = DiffusionPipeline.from_pretrained(
        str(tiny_dir), safety_checker=None, requires_safety_checker=False, low_cpu_mem_usage=False
    )
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.vae_scale_factor == 8
    assert pipe.vae.config.latent_channels == 4
    assert pipe.unet.config.in_channels == 4
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert UNet2DConditionModel.from_pretrained(tiny_dir / tiny.INPAINT_UNET).config.in_channels == 9
    assert UNet2DConditionModel.from_pretrained(tiny_dir / tiny.PIX2PIX_UNET).config.in_channels == 8
    ControlNetModel.from_pretrained(tiny_dir / tiny.CONTROLNET_CANNY)


def test_tokenizer_knows_prompt_words(tiny_dir: Path) -> None:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_dir / "tokenizer")
    ids = tokenizer("A photo of a red cat").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert len(ids) == 2 + 6  # one token per word
    assert all(len(tokenizer(word).input_ids) == 3 for word in tiny._WORDS)
    assert tokenizer.model_max_length == 77
    # bytes outside the word list still tokenize (byte-level), never to unknown tokens
    assert tokenizer.unk_token_id not in tokenizer("zebra ü 🙂").input_ids[1:-1]


def test_handle_loads_once_and_shares_modules(model_options: ModelOptions, tiny_dir: Path) -> None:
    handle = ModelHandle("builtin:tiny", model_options)
    txt2img, img2img = handle.pipeline("txt2img"), handle.pipeline("img2img", "euler")
    assert txt2img.unet is img2img.unet and txt2img.vae is img2img.vae
    assert txt2img.scheduler is not img2img.scheduler
    assert type(img2img.scheduler).__name__ == "EulerDiscreteScheduler"
    assert handle.pipeline("inpaint").unet.config.in_channels == 9
    assert handle.component(tiny.INPAINT_UNET) is handle.component(tiny.INPAINT_UNET)
    assert handle.supports("instruct_pix2pix") and handle.supports("controlnet_canny")


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "euler_a", "dpm++", "dpm++_karras", "pndm", "unipc"])
def test_every_scheduler_renders(renderer, scheduler: str) -> None:
    params = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "scheduler": scheduler}
    assert renderer.render("txt2img", params, 1, {}).images[0].size == (64, 64)


def test_fingerprint(renderer, tiny_dir: Path) -> None:
    import torch

    fingerprint = renderer.fingerprint()
    assert fingerprint["model"] == "builtin:tiny"
    assert fingerprint["model_hash"].startswith("sha256:")
    assert fingerprint["model_hash"] == renderer.fingerprint()["model_hash"]
    assert fingerprint["device"] == "cpu" and fingerprint["dtype"] == "float32"
    assert fingerprint["threads"] == torch.get_num_threads()
    assert fingerprint["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert {"diffusers", "torch", "reproducible"} <= fingerprint.keys()
