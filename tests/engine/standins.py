"""Tiny random-weight stand-ins of the models users bring, in both layouts they have them.

Each keeps the real class structure and block layout of its family (SD 1.x: four UNet levels, two resnets each,
cross-attention on the first three; SD 2.x: linear projections and OpenCLIP ViT-H's 23 used layers; SDXL: three
levels, deeper transformers, two text encoders and size conditioning; every VAE four levels of two resnets), and
text encoders with CLIP's real 49,408-token vocabulary, as every real checkpoint has; only the widths are tiny.

    diffusers folder   written by save_pretrained, the text encoders' keys as real hub repositories hold them
    single file        the folder converted by diffusers' own conversion scripts (tests/fixtures/diffusers_scripts,
                       run as their command line runs), i.e. the original CompVis / Stability key layout
"""

from __future__ import annotations

import contextlib
import io
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SCRIPTS = Path(__file__).parent.parent / "fixtures" / "diffusers_scripts"
SEED = 1234


@dataclass(frozen=True)
class StandIn:
    family: str
    folder: Path
    single_file: Path


def _text_config(hidden: int, layers: int, act: str, projection: int | None = None) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection or hidden,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )


def _vae(scaling: float) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        scaling_factor=scaling,
    )


def build_pipeline(family: str, in_channels: int = 4) -> Any:
    """A tiny pipeline of `family` ("sd1", "sd2", "sd2-v", "sdxl") with seeded weights."""
    import diffusers
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from engine.models.clip_tokenizer import clip_tokenizer

    torch.manual_seed(SEED)
    if family == "sdxl":
        unet = diffusers.UNet2DConditionModel(
            sample_size=128,
            in_channels=in_channels,
            block_out_channels=(64, 128, 128),
            layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 1, 2),
            attention_head_dim=(1, 2, 2),
            cross_attention_dim=64 + 128,  # both encoders' hidden states, concatenated
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=256 * 6 + 128,  # size/crop numbers + the pooled embedding
        )
        scheduler = diffusers.EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            timestep_spacing="leading",
        )
        return diffusers.StableDiffusionXLPipeline(
            vae=_vae(0.13025),
            text_encoder=CLIPTextModel(_text_config(64, 2, "quick_gelu")).eval(),
            # wider than the first, as OpenCLIP bigG (1280) is than CLIP ViT-L (768): diffusers tells them apart so
            text_encoder_2=CLIPTextModelWithProjection(_text_config(128, 2, "gelu")).eval(),
            tokenizer=clip_tokenizer("<|endoftext|>"),
            tokenizer_2=clip_tokenizer("!"),
            unet=unet,
            scheduler=scheduler,
        )
    v2 = family.startswith("sd2")
    width = 64 if v2 else 32
    unet = diffusers.UNet2DConditionModel(
        sample_size=96 if family == "sd2-v" else 64,
        in_channels=in_channels,
        block_out_channels=(width, width, 2 * width, 2 * width),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=64,
        attention_head_dim=(1, 1, 2, 2) if v2 else 8,
        use_linear_projection=v2,
        upcast_attention=family == "sd2-v",
    )
    if family == "sd2-v":
        # v-prediction training spreads this LayerNorm's bias (output_blocks.11.1 in the original layout), which
        # is how ComfyUI, and Opendream, tell SD 2.x v files; a random init leaves it at zero
        with torch.no_grad():
            unet.up_blocks[3].attentions[2].transformer_blocks[0].norm1.bias.normal_(0.0, 0.2)
    common = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1}
    if family == "sd2-v":  # SD 2.1 (768, v) ships a DDIM scheduler, the others PNDM
        scheduler = diffusers.DDIMScheduler(**common, prediction_type="v_prediction", clip_sample=False)
    else:
        scheduler = diffusers.PNDMScheduler(**common, skip_prk_steps=True)
    # SD 2.x's diffusers repositories hold the 23 layers of OpenCLIP ViT-H that SD uses
    text = _text_config(64, 23, "gelu") if v2 else _text_config(64, 2, "quick_gelu")
    return diffusers.StableDiffusionPipeline(
        vae=_vae(0.18215),
        text_encoder=CLIPTextModel(text).eval(),
        tokenizer=clip_tokenizer("!" if v2 else "<|endoftext|>"),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


_SD = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}
# scheduler/scheduler_config.json as the hub repositories hold it (runwayml/stable-diffusion-v1-5,
# stabilityai/stable-diffusion-2-base, stabilityai/stable-diffusion-2-1, stabilityai/stable-diffusion-xl-base-1.0):
# written before diffusers had `timestep_spacing`, so most lack it, and schedulers made from them take their default
HUB_SCHEDULERS: dict[str, dict[str, Any]] = {
    "sd1": {"_class_name": "PNDMScheduler", **_SD, "skip_prk_steps": True},
    "sd2": {"_class_name": "PNDMScheduler", **_SD, "skip_prk_steps": True, "prediction_type": "epsilon"},
    "sd2-v": {"_class_name": "DDIMScheduler", **_SD, "prediction_type": "v_prediction"},
    "sdxl": {
        "_class_name": "EulerDiscreteScheduler",
        **_SD,
        "interpolation_type": "linear",
        "prediction_type": "epsilon",
        "sample_max_value": 1.0,
        "skip_prk_steps": True,
        "timestep_spacing": "leading",
        "use_karras_sigmas": False,
    },
}


def _as_hub_repositories_hold_it(folder: Path, family: str) -> None:
    import json

    from safetensors.torch import load_file, save_file

    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(HUB_SCHEDULERS[family], indent=2))
    # transformers 5 writes CLIPTextModel's keys without the `text_model.` prefix; the hub's SD repositories (and
    # the conversion scripts reading them) have it.

    for name in ("text_encoder", "text_encoder_2"):
        path = folder / name / "model.safetensors"
        if not path.exists():
            continue
        state = load_file(str(path))
        renamed = {
            key if key.startswith(("text_model.", "text_projection")) else f"text_model.{key}": value
            for key, value in state.items()
        }
        save_file(renamed, str(path), metadata={"format": "pt"})


def convert_to_single_file(folder: Path, out: Path, family: str) -> Path:
    """Run diffusers' conversion script on `folder`, exactly as `python script --model_path … --checkpoint_path …
    --use_safetensors` would (its `.ckpt` output too, without --use_safetensors)."""
    script = SCRIPTS / (
        "convert_diffusers_to_original_sdxl.py"
        if family == "sdxl"
        else "convert_diffusers_to_original_stable_diffusion.py"
    )
    argv = ["script", "--model_path", str(folder), "--checkpoint_path", str(out)]
    if out.suffix == ".safetensors":
        argv.append("--use_safetensors")
    saved = sys.argv
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every key it renames
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved
    return out


def build_stand_in(root: Path, family: str, in_channels: int = 4, suffix: str = ".safetensors") -> StandIn:
    name = family if in_channels == 4 else f"{family}-{in_channels}ch"
    folder = root / name
    pipe = build_pipeline(family, in_channels)
    pipe.save_pretrained(str(folder))
    _as_hub_repositories_hold_it(folder, family)
    single = convert_to_single_file(folder, root / f"{name}{suffix}", family)
    return StandIn(family, folder, single)


def build_lora(unet: Any, path: Path, layout: str = "peft", seed: int = 99, rank: int = 4) -> Path:
    """A LoRA for `unet`'s attention projections with seeded random weights, written as users get them:
    `layout="peft"` is diffusers' own `save_lora_weights` output, `layout="kohya"` is that state dict converted by
    diffusers' `convert_state_dict_to_kohya` (the A1111 / ComfyUI layout: lora_unet_*.lora_down/lora_up/alpha)."""
    import copy

    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_kohya
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    unet = copy.deepcopy(unet)
    torch.manual_seed(seed)
    # init_lora_weights=False: both matrices random (a trained LoRA's B is not zero), scaled small
    unet.add_adapter(
        LoraConfig(
            r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False
        )
    )
    state = {key: value * 0.5 for key, value in get_peft_model_state_dict(unet).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "kohya":
        save_file(convert_state_dict_to_kohya({f"unet.{key}": value for key, value in state.items()}), str(path))
        return path
    StableDiffusionPipeline.save_lora_weights(
        str(path.parent), unet_lora_layers=convert_state_dict_to_diffusers(state), weight_name=path.name
    )
    return path
