"""The built-in models `builtin:tiny-sd3` and `builtin:tiny-flux`: tiny SD 3 / FLUX.1-shaped pipelines with
seeded random weights, built offline, so the transformer (DiT) families run through diffusers' real pipeline
classes in tests and on machines without the real weights.

Shapes follow the real models where the pipelines depend on them (a VAE that downsamples x8 into 16 latent
channels with the family's scaling and shift factors and no quant convs, CLIP encoders with projections, a T5
encoder, the family's flow-matching scheduler config), everything else is as small as it goes: a 256 px
render takes a fraction of a second on a laptop CPU. Written with `save_pretrained` like engine.models.tiny,
and loaded back with `from_pretrained` exactly like a downloaded model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.models import tiny

_CLIP_DIM = 32  # hidden size and projection size of the tiny CLIP encoders
_T5_DIM = 64  # SD 3 pads the two CLIP encoders' hidden states (2 x 32) up to the T5 width, so at least 64
_T5_MAX_LENGTH = 512  # FLUX refuses a max_sequence_length above 512


def _vae_config(scaling_factor: float, shift_factor: float) -> dict[str, Any]:
    # SD 3's and FLUX's VAE: 16 latent channels, x8, latents shifted then scaled, no quant convolutions.
    return {
        **tiny._VAE_CONFIG,
        "latent_channels": 16,
        "scaling_factor": scaling_factor,
        "shift_factor": shift_factor,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
    }


# Mirrors stabilityai/stable-diffusion-3(.5)-*'s scheduler/scheduler_config.json.
SD3_SCHEDULER_CONFIG: dict[str, Any] = {"num_train_timesteps": 1000, "shift": 3.0}
# Mirrors black-forest-labs/FLUX.1-schnell's scheduler/scheduler_config.json (FLUX.1-dev: shift 3.0 and
# use_dynamic_shifting true, the shift then following the image's token count between base and max).
FLUX_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "use_dynamic_shifting": False,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}


def _clip_tokenizer() -> Any:
    from transformers import CLIPTokenizer

    vocab, merges = tiny.tiny_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _clip_config() -> Any:
    from transformers import CLIPTextConfig

    vocab, _ = tiny.tiny_vocab()
    return CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=_CLIP_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=_CLIP_DIM,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )


def t5_tokenizer() -> Any:
    """A T5 tokenizer built in code: a Unigram model (T5's kind) over the prompt words of engine.models.tiny,
    whole words first, single characters as the fallback, so any prompt tokenizes without a download."""
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + word, -1.0) for word in dict.fromkeys(tiny._WORDS)]
    pieces += [(char, -5.0) for char in "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'-"]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=_T5_MAX_LENGTH)


def _t5_encoder(vocab_size: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size,
        d_model=_T5_DIM,
        d_kv=16,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5EncoderModel(config).eval()


def build_sd3_components() -> dict[str, Any]:
    """A tiny SD 3: two CLIP encoders with projections (their pooled outputs side by side condition the
    transformer), a T5 encoder, an MMDiT (SD3Transformer2DModel) over 2x2 patches, the 16-channel VAE."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection

    tokenizer_3 = t5_tokenizer()
    tiny._seeded(21)
    text_encoder = CLIPTextModelWithProjection(_clip_config())
    tiny._seeded(22)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config())
    tiny._seeded(23)
    text_encoder_3 = _t5_encoder(len(tokenizer_3))
    tiny._seeded(24)
    transformer = SD3Transformer2DModel(
        sample_size=32,  # x8 VAE -> 256 px default size
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=_T5_DIM,
        caption_projection_dim=32,  # = num_attention_heads x attention_head_dim
        pooled_projection_dim=2 * _CLIP_DIM,
        pos_embed_max_size=96,  # as SD 3: up to 96 x 2 x 8 = 1536 px a side
    )
    tiny._seeded(25)
    vae = AutoencoderKL(**_vae_config(1.5305, 0.0609))
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "text_encoder_3": text_encoder_3,
        "tokenizer": _clip_tokenizer(),
        "tokenizer_2": _clip_tokenizer(),
        "tokenizer_3": tokenizer_3,
        "scheduler": FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER_CONFIG),
    }


def build_flux_components() -> dict[str, Any]:
    """A tiny FLUX.1 (schnell-shaped: no guidance embedding): a CLIP encoder for the pooled embedding, a T5
    encoder for the sequence, a FluxTransformer2DModel over 2x2-packed latents (16 x 4 = 64 channels)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer_2 = t5_tokenizer()
    tiny._seeded(31)
    text_encoder = CLIPTextModel(_clip_config())
    tiny._seeded(32)
    text_encoder_2 = _t5_encoder(len(tokenizer_2))
    tiny._seeded(33)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=_T5_DIM,
        pooled_projection_dim=_CLIP_DIM,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),  # sums to attention_head_dim
    )
    tiny._seeded(34)
    vae = AutoencoderKL(**_vae_config(0.3611, 0.1159))
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2,
        "tokenizer": _clip_tokenizer(),
        "tokenizer_2": tokenizer_2,
        "scheduler": FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG),
    }


def _save(directory: Path, name: str, pipeline_class: str, components: dict[str, Any]) -> None:
    from engine.models.libs import diffusers_quiet

    cls = getattr(diffusers_quiet(), pipeline_class)
    cls(**components, image_encoder=None, feature_extractor=None).save_pretrained(directory)
    manifest = {"name": f"builtin:{name}", "build_version": tiny.BUILD_VERSION, "seed": tiny.SEED,
                "files": tiny.hash_files(directory)}  # fmt: skip
    (directory / tiny.MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def write_sd3(directory: Path) -> None:
    _save(directory, "tiny-sd3", "StableDiffusion3Pipeline", build_sd3_components())


def write_flux(directory: Path) -> None:
    _save(directory, "tiny-flux", "FluxPipeline", build_flux_components())


WRITERS = {"tiny-sd3": write_sd3, "tiny-flux": write_flux}
