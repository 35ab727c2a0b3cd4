"""A single model file is told apart by its keys (the original checkpoints' layouts): the family of a checkpoint,
or what else it is, and a file that is no model is refused saying so, without running anything from it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.errors import ModelUnavailable
from engine.models.checkpoint import NotACheckpoint, inspect_checkpoint
from engine.models.families import SD1, SD2, SDXL, model_capabilities
from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer

T = torch.zeros(1)
LAYOUTS = {
    "sd1": ["model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.encoder.conv_in.weight",
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"],
    "sd2": ["model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.encoder.conv_in.weight",
            "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", "cond_stage_model.model.ln_final.weight"],
    "sdxl": ["model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.encoder.conv_in.weight",
             "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
             "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"],
    "lora": ["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
             "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"],
    "vae": ["encoder.conv_in.weight", "decoder.conv_out.weight"],
    "controlnet": ["control_model.input_blocks.0.0.weight", "control_model.input_hint_block.0.weight"],
}  # fmt: skip


def write(tmp_path: Path, name: str, keys: list[str]) -> Path:
    path = tmp_path / f"{name}.safetensors"
    save_file({key: T.clone() for key in keys}, str(path))
    return path


@pytest.mark.parametrize(("layout", "family"), [("sd1", SD1), ("sd2", SD2), ("sdxl", SDXL)])
def test_a_checkpoint_s_family_is_told_from_its_keys(tmp_path: Path, layout: str, family) -> None:
    path = write(tmp_path, layout, LAYOUTS[layout])
    info = inspect_checkpoint(path)
    assert (info.kind, info.family) == ("checkpoint", family)
    assert model_capabilities(str(path))[0] is family  # told at server start, from the header alone


@pytest.mark.parametrize(("layout", "words"), [("lora", "LoRA"), ("vae", "VAE"), ("controlnet", "ControlNet")])
def test_a_file_that_is_not_a_base_model_is_refused_saying_what_it_is(tmp_path: Path, layout: str, words: str) -> None:
    path = write(tmp_path, layout, LAYOUTS[layout])
    renderer = Renderer(ModelManager(str(path), ModelOptions(device="cpu", models_dir=tmp_path)))
    with pytest.raises(ModelUnavailable, match=words):
        renderer.render("txt2img", {"prompt": "x", "width": 64, "height": 64, "steps": 1}, 1, {})


def test_a_damaged_or_hostile_file_is_refused_and_nothing_in_it_runs(tmp_path: Path) -> None:
    truncated = write(tmp_path, "whole", LAYOUTS["sd1"])
    (tmp_path / "cut.safetensors").write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(NotACheckpoint, match="not a readable"):
        inspect_checkpoint(tmp_path / "cut.safetensors")

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):  # what a malicious pickle does: run code on load
            return (Path.touch, (marker,))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": Payload()}))
    with pytest.raises(NotACheckpoint, match="weights_only"):
        inspect_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()
    torch.save([T], tmp_path / "list.ckpt")
    with pytest.raises(NotACheckpoint, match="not a state dict"):
        inspect_checkpoint(tmp_path / "list.ckpt")
