"""A full-size Stable Diffusion 1.5- or SDXL-shaped model with random weights, as a diffusers folder.

    .venv/bin/python bench/fullsize.py sd15 /tmp/sd15-shaped      # ~1.07 B parameters, 2.1 GB in fp16
    .venv/bin/python bench/fullsize.py sdxl /tmp/sdxl-shaped      # ~3.5 B parameters, 7 GB in fp16
    .venv/bin/python bench/engine.py --model /tmp/sd15-shaped --size 512 --only overhead,previews

No weights can be downloaded here, but speed depends on the shapes alone: each component has the real model's
published config (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-xl-base-1.0), CLIP's real
49,408-token vocabulary (shipped, engine/models/clip_tokenizer.py) and seeded random weights, saved with
`save_pretrained` in fp16 as the real folders are. The pictures are noise; the work per step is the real one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The published configs, less what diffusers fills in by default.
UNETS: dict[str, dict[str, Any]] = {
    "sd15": {
        "sample_size": 64,
        "block_out_channels": (320, 640, 1280, 1280),
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
    },
    "sdxl": {
        "sample_size": 128,
        "block_out_channels": (320, 640, 1280),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": (1, 2, 10),
        "attention_head_dim": (5, 10, 20),
        "cross_attention_dim": 2048,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
    },
}
VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
}
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
          "hidden_act": "quick_gelu", "projection_dim": 768}  # fmt: skip
CLIP_BIG_G = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20,
              "hidden_act": "gelu", "projection_dim": 1280}  # fmt: skip
SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1,
             "clip_sample": False, "set_alpha_to_one": False, "num_train_timesteps": 1000}  # fmt: skip


def text_encoder(config: dict[str, Any], with_projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    text_config = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406,
                                 eos_token_id=49407, pad_token_id=49407, **config)  # fmt: skip
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(text_config)


def build(family: str, seed: int = 0) -> Any:
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    from engine.models.clip_tokenizer import clip_tokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**UNETS[family])
    scheduler = DDIMScheduler(**SCHEDULER)
    if family == "sd15":
        vae = AutoencoderKL(**VAE, sample_size=512)
        return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder(CLIP_L, False), tokenizer=clip_tokenizer(),
                                       unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)  # fmt: skip
    vae = AutoencoderKL(**VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
    return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder(CLIP_L, False), tokenizer=clip_tokenizer(),
                                     text_encoder_2=text_encoder(CLIP_BIG_G, True), tokenizer_2=clip_tokenizer("!"),
                                     unet=unet, scheduler=scheduler)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", choices=sorted(UNETS))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    started = time.perf_counter()
    pipe = build(args.family, args.seed)
    modules = [part for part in pipe.components.values() if isinstance(part, torch.nn.Module)]
    parameters = sum(p.numel() for module in modules for p in module.parameters())
    pipe.to(torch.float16).save_pretrained(str(args.out))
    print(f"{args.family}-shaped: {parameters / 1e9:.2f} B parameters, written to {args.out} in fp16 "
          f"in {time.perf_counter() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
