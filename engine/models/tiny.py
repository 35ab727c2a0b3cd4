"""The built-in model `builtin:tiny`: a complete, tiny Stable Diffusion family with seeded random weights.

It exists so that everything downstream of the weights (pipelines, schedulers, operations, the queue, the
browser) can be exercised without downloading gigabytes: it renders noise-like pictures, not art. The shapes
follow real SD 1.x (a VAE that downsamples x8 into 4 latent channels, a CLIP text encoder, a 4-channel UNet)
so that the code paths are the real ones, and it is small enough to render 256x256 in a fraction of a second
on a laptop CPU.

The family is built once into a folder with `save_pretrained` and from then on loaded back with
`from_pretrained` exactly like a downloaded model. The folder is an ordinary diffusers pipeline folder plus
three optional component folders that the loader looks for in any local model folder:

    model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/   (StableDiffusionPipeline)
    unet_inpaint/       UNet2DConditionModel with 9 input channels (latents + mask + masked image)
    unet_pix2pix/       UNet2DConditionModel with 8 input channels (latents + source image latents)
    controlnet_canny/   ControlNetModel conditioned on an RGB edge map
    opendream-model.json  manifest, written last: its presence marks a finished build
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

BUILTIN_NAME = "tiny"
MANIFEST_NAME = "opendream-model.json"
# Bump when the architecture or the seeding changes: a folder built by another version is rebuilt.
BUILD_VERSION = 1
SEED = 20240607

INPAINT_UNET = "unet_inpaint"
PIX2PIX_UNET = "unet_pix2pix"
CONTROLNET_CANNY = "controlnet_canny"

_TEXT_DIM = 32
_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 32,  # x8 VAE -> 256 px default size
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": _TEXT_DIM,
    "attention_head_dim": 8,
    "norm_num_groups": 16,
}
_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (16, 16, 32, 32),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 256,
    "scaling_factor": 0.18215,
}
# Mirrors the scheduler_config.json of SD 1.5; the other schedulers are derived from it with from_config.
SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
}

# A vocabulary small enough to write in code: every byte (as CLIP's byte-level BPE spells it, alone and as
# word end) plus whole-word merges for a few common prompt words, so that typical prompts tokenize to words.
_WORD_TEXT = """
a an the of and in on with at by photo painting portrait landscape picture drawing style art of cat
dog bird horse fox owl fish tree forest flower rose sky cloud sun moon star sea ocean river lake
mountain city street house castle car boat robot man woman girl boy face eyes hair red orange
yellow green blue purple pink white black gray gold silver big small old new dark light bright soft
sharp beautiful detailed realistic cinematic night day morning sunset winter summer snow rain fire
water stone wood glass make it turn into add remove more less
"""
_WORDS = tuple(_WORD_TEXT.split())


def _bytes_to_unicode() -> list[str]:
    # CLIP's (and GPT-2's) reversible byte -> printable character table.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    # The tokenizers library's BPE: repeatedly merge the lowest-ranked adjacent pair (leftmost on ties).
    symbols = [*word[:-1], word[-1] + "</w>"]
    while len(symbols) > 1:
        rank, at = min((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(symbols)))
        if rank == len(ranks):
            break
        symbols[at : at + 2] = [symbols[at] + symbols[at + 1]]
    return symbols


def tiny_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in _bytes_to_unicode():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    # A merge added for one word can split another (BPE applies the lowest-ranked pair anywhere), so each
    # word's merges are appended only after segmenting it with the merges so far: a merge ranked after all
    # others cannot break a word that is already a single token.
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(_WORDS):
        while len(pieces := _bpe(word, ranks)) > 1:
            ranks[(pieces[0], pieces[1])] = len(ranks)
            vocab.setdefault(pieces[0] + pieces[1], len(vocab))
    return vocab, list(ranks)


def _seeded(offset: int) -> None:
    # Each component gets its own seed so adding one never changes the weights of another.
    torch.manual_seed(SEED + offset)


def _unet(in_channels: int, offset: int) -> Any:
    from diffusers import UNet2DConditionModel

    _seeded(offset)
    return UNet2DConditionModel(in_channels=in_channels, **_UNET_CONFIG)


def _controlnet(offset: int) -> Any:
    from diffusers import ControlNetModel

    _seeded(offset)
    controlnet = ControlNetModel(
        in_channels=4,
        conditioning_embedding_out_channels=(8, 16, 32, 32),  # three stride-2 convs: x8, like the VAE
        **{k: v for k, v in _UNET_CONFIG.items() if k not in ("sample_size", "out_channels", "up_block_types")},
    )
    # A trained ControlNet starts from zero convolutions and learns them; a random one left at zero would
    # have no effect at all, so give them small random weights to make the control image matter.
    with torch.no_grad():
        for name, param in controlnet.named_parameters():
            if "controlnet_" in name or "conv_out" in name:
                param.copy_(torch.randn_like(param) * 0.1)
    return controlnet


def build_components() -> dict[str, Any]:
    """Every module of the family, with weights drawn from the fixed seed (same seed -> same bits)."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = tiny_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    _seeded(1)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=_TEXT_DIM,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=_TEXT_DIM,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    _seeded(2)
    vae = AutoencoderKL(**_VAE_CONFIG)
    return {
        "unet": _unet(4, 3),
        "vae": vae,
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": DDIMScheduler(**SCHEDULER_CONFIG),
        INPAINT_UNET: _unet(9, 4),
        PIX2PIX_UNET: _unet(8, 5),
        CONTROLNET_CANNY: _controlnet(6),
    }


def _write(directory: Path) -> None:
    from engine.models.libs import diffusers_quiet

    StableDiffusionPipeline = diffusers_quiet().StableDiffusionPipeline
    components = build_components()
    extras = {name: components.pop(name) for name in (INPAINT_UNET, PIX2PIX_UNET, CONTROLNET_CANNY)}
    pipe = StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(directory)
    for name, module in extras.items():
        module.save_pretrained(directory / name)
    manifest = {
        "name": f"builtin:{BUILTIN_NAME}",
        "build_version": BUILD_VERSION,
        "seed": SEED,
        "files": hash_files(directory),
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def build_sdxl_components() -> dict[str, Any]:
    """A tiny SDXL: two CLIP text encoders (the second with a projection, for the pooled embedding), a UNet with
    SDXL's size/crop ("text_time") conditioning, the same x8 VAE with SDXL's latent scaling."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, merges = tiny_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    text_config = {
        "vocab_size": len(vocab),
        "hidden_size": _TEXT_DIM,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "projection_dim": _TEXT_DIM,
        "bos_token_id": vocab["<|startoftext|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
    }
    _seeded(11)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    _seeded(12)
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text_config))
    _seeded(13)
    unet = UNet2DConditionModel(
        **{**_UNET_CONFIG, "cross_attention_dim": 2 * _TEXT_DIM},  # both encoders' hidden states, side by side
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        # six size/crop numbers x 8, and the pooled embedding of the second encoder
        projection_class_embeddings_input_dim=6 * 8 + _TEXT_DIM,
        use_linear_projection=True,
    )
    _seeded(14)
    vae = AutoencoderKL(**{**_VAE_CONFIG, "scaling_factor": 0.13025})
    scheduler_config = {k: v for k, v in SCHEDULER_CONFIG.items() if k not in ("clip_sample", "set_alpha_to_one")}
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer,
        "scheduler": EulerDiscreteScheduler(**scheduler_config),
    }


def _write_sdxl(directory: Path) -> None:
    from engine.models.libs import diffusers_quiet

    StableDiffusionXLPipeline = diffusers_quiet().StableDiffusionXLPipeline
    StableDiffusionXLPipeline(**build_sdxl_components()).save_pretrained(directory)
    manifest = {"name": "builtin:tiny-sdxl", "build_version": BUILD_VERSION, "seed": SEED,
                "files": hash_files(directory)}  # fmt: skip
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


WRITERS = {"tiny": _write, "tiny-sdxl": _write_sdxl}
from engine.models.tiny_dit import WRITERS as _DIT_WRITERS  # noqa: E402  (it builds on this module)

WRITERS.update(_DIT_WRITERS)


def hash_files(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory` (except the manifest), by relative POSIX path."""
    hashes: dict[str, str] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative != MANIFEST_NAME:
            hashes[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("build_version") == BUILD_VERSION else None


def ensure_tiny_model(directory: str | os.PathLike[str], name: str = BUILTIN_NAME) -> Path:
    """Build the tiny family into `directory` unless a finished build of this version is already there.

    The build happens in a temporary sibling folder that is renamed into place, so a crash never leaves a
    half-written model behind and two processes racing to build both end up using one complete folder.
    """
    target = Path(directory)
    if read_manifest(target) is not None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        # Building must not disturb the caller's global RNG (it may be mid-way through its own seeded work).
        with torch.random.fork_rng(devices=[]):
            WRITERS[name](staging)
        if target.exists():
            # A stale build (other version, or unfinished by an older layout): move it aside, then replace.
            if read_manifest(target) is not None:
                return target  # another process finished first
            stale = target.with_name(f".{target.name}.stale-{os.getpid()}")
            os.rename(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            if read_manifest(target) is None:
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
    return target


TAESD_NAME = "tiny-taesd"
_TAESD_CONFIG: dict[str, Any] = {
    "encoder_block_out_channels": (8, 8, 8, 8),
    "decoder_block_out_channels": (8, 8, 8, 8),
    "num_encoder_blocks": (1, 1, 1, 1),
    "num_decoder_blocks": (1, 1, 1, 1),
    "latent_channels": 4,
}


def ensure_tiny_taesd(directory: str | os.PathLike[str]) -> Path:
    """A random-weight TAESD (diffusers' AutoencoderTiny) with the real class and folder layout, for
    `builtin:tiny-taesd` live previews; built once, then loaded with `from_pretrained` like a downloaded one."""
    from diffusers import AutoencoderTiny

    target = Path(directory)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        with torch.random.fork_rng(devices=[]):
            _seeded(7)
            AutoencoderTiny(**_TAESD_CONFIG).save_pretrained(staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
    return target
