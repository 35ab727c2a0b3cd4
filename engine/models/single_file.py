"""Single-file checkpoints (the original CompVis / Stability / A1111 / ComfyUI key layout), loaded offline.

diffusers' `from_single_file` converts the weights itself, but it wants each component's diffusers config (and
the tokenizers and scheduler) from the hub. Here they come from the file and from Opendream:

- the architecture of the UNet, the VAE and the text encoders is read from the tensor shapes (as ComfyUI's model
  detection does), so a fine-tune, a pruned file or a model of another size of a known family loads as it is;
- what the weights cannot tell is a fact of the family, in `LAYOUTS` below: attention heads, activation
  functions, the padding token, the scheduler's training configuration, the VAE's latent scaling;
- the tokenizers are CLIP's own vocabulary, shipped (engine.models.clip_tokenizer).

They are written as an ordinary diffusers config folder, which `from_single_file(config=folder,
local_files_only=True)` reads: nothing is downloaded for a single file.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import ModelUnavailable
from engine.models.checkpoint import NotACheckpoint, read_shapes
from engine.models.families import ModelFamily

UNET = "model.diffusion_model."
VAE_PREFIXES = ("first_stage_model.", "vae.")
Shapes = Mapping[str, tuple[int, ...]]
Config = dict[str, Any]


@dataclass(frozen=True)
class TextEncoderLayout:
    """Where one text encoder's weights lie in a checkpoint, and what its shapes do not say."""

    component: str  # the pipeline's component name
    model_class: str  # transformers class
    prefix: str
    naming: str  # "clip" (transformers names) or "open_clip" (OpenCLIP names: resblocks, in_proj)
    hidden_act: str
    pad_token: str
    # SD 2.x conditions on the penultimate layer of OpenCLIP ViT-H (LDM's `layer: penultimate`): Stability's
    # files hold all 24 layers, the last one unused, and diffusers' SD 2.x configs leave it out. OpenCLIP towers
    # are of even depth, so an odd count means the unused layer was already dropped (a file converted from a
    # diffusers folder).
    skip_last_layer: bool = False


@dataclass(frozen=True)
class CheckpointLayout:
    """A family's original checkpoint format: the facts of its architecture that the shapes leave open."""

    text_encoders: tuple[TextEncoderLayout, ...]
    scheduler_class: str
    scheduler: MappingProxyType[str, Any]
    # UNet attention: a fixed number of heads (SD 1.x: 8) or heads of a fixed width (SD 2.x, SDXL: 64 channels)
    attention_heads: int | None = None
    attention_head_channels: int | None = None
    upcast_attention: bool = False
    # SDXL's micro-conditioning: each of the 6 size/crop numbers is embedded in this many channels
    addition_time_embed_dim: int = 256


_SD_SCHEDULER = {  # the scheduler_config.json of runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-1
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "num_train_timesteps": 1000,
    "trained_betas": None,
    "prediction_type": "epsilon",
}
_CLIP_L = TextEncoderLayout(
    "text_encoder", "CLIPTextModel", "cond_stage_model.transformer.text_model.", "clip", "quick_gelu", "<|endoftext|>"
)
_OPENCLIP_H = TextEncoderLayout(
    "text_encoder", "CLIPTextModel", "cond_stage_model.model.", "open_clip", "gelu", "!", skip_last_layer=True
)
_SD2 = CheckpointLayout(
    (_OPENCLIP_H,), "PNDMScheduler", MappingProxyType(_SD_SCHEDULER), attention_head_channels=64
)  # fmt: skip
LAYOUTS: dict[str, CheckpointLayout] = {
    "sd1": CheckpointLayout((_CLIP_L,), "PNDMScheduler", MappingProxyType(_SD_SCHEDULER), attention_heads=8),
    "sd2": _SD2,
    "sd2-v": CheckpointLayout(
        (_OPENCLIP_H,),
        "DDIMScheduler",
        MappingProxyType({**_SD_SCHEDULER, "prediction_type": "v_prediction"}),
        attention_head_channels=64,
        upcast_attention=True,
    ),
    "sdxl": CheckpointLayout(
        (
            TextEncoderLayout(
                "text_encoder",
                "CLIPTextModel",
                "conditioner.embedders.0.transformer.text_model.",
                "clip",
                "quick_gelu",
                "<|endoftext|>",
            ),
            TextEncoderLayout(
                "text_encoder_2",
                "CLIPTextModelWithProjection",
                "conditioner.embedders.1.model.",
                "open_clip",
                "gelu",
                "!",
            ),
        ),
        "EulerDiscreteScheduler",  # stabilityai/stable-diffusion-xl-base-1.0's scheduler_config.json
        MappingProxyType(
            {
                **_SD_SCHEDULER,
                "interpolation_type": "linear",
                "sample_max_value": 1.0,
                "timestep_spacing": "leading",
                "use_karras_sigmas": False,
            }
        ),
        attention_head_channels=64,
    ),
}


for _name in ("sd1", "sd2", "sdxl"):  # an inpainting checkpoint is laid out as its family's
    LAYOUTS[f"{_name}-inpaint"] = LAYOUTS[_name]


class UnknownArchitecture(ValueError):
    """The tensors do not have the shape of the family's architecture."""


# --- reading the file --------------------------------------------------------------------------------------


# --- the configs the shapes give -----------------------------------------------------------------------------


def _count(shapes: Shapes, pattern: str) -> int:
    """How many distinct indices fill the `{}` of `pattern` (a key prefix)."""
    regex = re.compile(re.escape(pattern).replace(r"\{\}", r"(\d+)"))
    return len({match.group(1) for name in shapes if (match := regex.match(name))})


def unet_config(shapes: Shapes, family: ModelFamily, layout: CheckpointLayout) -> Config:
    """UNet2DConditionModel's config from the LDM UNet's tensors: levels, channels, resnets per level, where the
    transformers are and how deep, the text width, linear or convolutional projections, SDXL's add-embedding."""
    unet = {name[len(UNET) :]: shape for name, shape in shapes.items() if name.startswith(UNET)}
    if "input_blocks.0.0.weight" not in unet:
        raise UnknownArchitecture("no UNet (model.diffusion_model.input_blocks.0.0.weight) in the file")
    levels: list[list[tuple[int, int]]] = [[]]  # per level: (channels, transformer depth) of each resnet
    index = 1
    while f"input_blocks.{index}.0.op.weight" in unet or f"input_blocks.{index}.0.in_layers.0.weight" in unet:
        if f"input_blocks.{index}.0.op.weight" in unet:
            levels.append([])  # a downsampler ends a level
        else:
            channels = unet[f"input_blocks.{index}.0.out_layers.3.weight"][0]
            depth = _count(unet, f"input_blocks.{index}.1.transformer_blocks.{{}}.")
            levels[-1].append((channels, depth))
        index += 1
    if not levels[0] or any(len(level) != len(levels[0]) for level in levels):
        raise UnknownArchitecture(f"the UNet's levels have uneven resnet counts: {[len(level) for level in levels]}")
    channels = [level[-1][0] for level in levels]
    depths = [max(depth for _, depth in level) for level in levels]
    attention = [depth > 0 for depth in depths]
    cross = next((shape for name, shape in unet.items() if name.endswith("attn2.to_k.weight")), None)
    if cross is None:
        raise UnknownArchitecture("the UNet has no cross-attention (attn2.to_k): not a text-to-image UNet")
    proj_in = next(shape for name, shape in unet.items() if name.endswith(".proj_in.weight"))
    if layout.attention_heads is not None:
        heads: int | list[int] = layout.attention_heads
    else:
        heads = [max(1, width // (layout.attention_head_channels or 64)) for width in channels]
    config: Config = {
        "_class_name": "UNet2DConditionModel",
        "sample_size": family.native_size // 8,
        "in_channels": unet["input_blocks.0.0.weight"][1],  # 4; 9 for inpainting models, 8 for instruct-pix2pix
        "out_channels": unet["out.2.weight"][0],
        "layers_per_block": len(levels[0]),
        "block_out_channels": channels,
        "down_block_types": ["CrossAttnDownBlock2D" if on else "DownBlock2D" for on in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if on else "UpBlock2D" for on in reversed(attention)],
        "cross_attention_dim": cross[1],
        "attention_head_dim": heads,
        "use_linear_projection": len(proj_in) == 2,
        "upcast_attention": layout.upcast_attention,
        "transformer_layers_per_block": [max(depth, 1) for depth in depths],
    }
    mid_depth = _count(unet, "middle_block.1.transformer_blocks.{}.")
    if mid_depth and mid_depth != config["transformer_layers_per_block"][-1]:
        raise UnknownArchitecture(f"the UNet's middle block has {mid_depth} transformer layers, its last {depths[-1]}")
    if "label_emb.0.0.weight" in unet:  # SDXL: pooled text embedding + size/crop conditioning
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=layout.addition_time_embed_dim,
            projection_class_embeddings_input_dim=unet["label_emb.0.0.weight"][1],
        )
    return config


def vae_config(shapes: Shapes, family: ModelFamily) -> Config:
    prefix = next((p for p in VAE_PREFIXES if f"{p}encoder.conv_in.weight" in shapes), None)
    if prefix is None:
        raise UnknownArchitecture("no VAE (first_stage_model.encoder.conv_in.weight) in the file")
    vae = {name[len(prefix) :]: shape for name, shape in shapes.items() if name.startswith(prefix)}
    levels = _count(vae, "encoder.down.{}.")
    per_level = _count(vae, "encoder.down.0.block.{}.")
    channels = [vae[f"encoder.down.{level}.block.{per_level - 1}.conv2.weight"][0] for level in range(levels)]
    return {
        "_class_name": "AutoencoderKL",
        "in_channels": vae["encoder.conv_in.weight"][1],
        "out_channels": vae["decoder.conv_out.weight"][0],
        "latent_channels": vae["decoder.conv_in.weight"][1],
        "block_out_channels": channels,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "layers_per_block": per_level,
        "sample_size": family.native_size,
        "scaling_factor": family.scaling_factor,
    }


def text_encoder_config(shapes: Shapes, text: TextEncoderLayout) -> Config:
    p = text.prefix
    if text.naming == "clip":
        tokens = shapes.get(f"{p}embeddings.token_embedding.weight")
        positions = shapes.get(f"{p}embeddings.position_embedding.weight")
        layers = _count(shapes, f"{p}encoder.layers.{{}}.")
        mlp = shapes.get(f"{p}encoder.layers.0.mlp.fc1.weight")
        projection = None
    else:
        tokens = shapes.get(f"{p}token_embedding.weight")
        positions = shapes.get(f"{p}positional_embedding")
        layers = _count(shapes, f"{p}transformer.resblocks.{{}}.")
        mlp = shapes.get(f"{p}transformer.resblocks.0.mlp.c_fc.weight")
        projection = shapes.get(f"{p}text_projection")
    if tokens is None or positions is None or mlp is None or not layers:
        raise UnknownArchitecture(f"no text encoder under {p} in the file")
    hidden = tokens[1]
    config: Config = {
        "architectures": [text.model_class],
        "model_type": "clip_text_model",
        "vocab_size": tokens[0],
        "hidden_size": hidden,
        "intermediate_size": mlp[0],
        "num_hidden_layers": layers - 1 if text.skip_last_layer and layers % 2 == 0 else layers,
        "num_attention_heads": max(1, hidden // 64),  # CLIP and OpenCLIP text towers: heads of 64 channels
        "max_position_embeddings": positions[0],
        "hidden_act": text.hidden_act,
        "projection_dim": projection[1] if projection else hidden,
        # the values of the real repositories' configs (CLIP's pooled output then takes the highest id: EOS)
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
    }
    return config


@dataclass(frozen=True)
class DerivedConfigs:
    family: ModelFamily
    components: dict[str, Config]  # component -> config.json
    digest: str  # sha256 of the configs, for the fingerprint

    def describe(self) -> dict[str, Any]:
        return {"configs_sha256": self.digest, "derived_from": "tensor shapes", "family": self.family.name}


def derive_configs(shapes: Shapes, family: ModelFamily) -> DerivedConfigs:
    layout = LAYOUTS.get(family.name)
    if layout is None:
        raise UnknownArchitecture(f"single files of {family.title} cannot be loaded yet: use a diffusers folder")
    components: dict[str, Config] = {"unet": unet_config(shapes, family, layout), "vae": vae_config(shapes, family)}
    for text in layout.text_encoders:
        components[text.component] = text_encoder_config(shapes, text)
    digest = hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()
    return DerivedConfigs(family, components, digest)


# --- the config folder ---------------------------------------------------------------------------------------


def write_config_folder(directory: Path, derived: DerivedConfigs, pipeline_class: str) -> Path:
    """An ordinary diffusers pipeline folder without weights: model_index.json, each component's config, the
    tokenizers and the scheduler."""
    from engine.models.clip_tokenizer import clip_tokenizer

    layout = LAYOUTS[derived.family.name]
    index: dict[str, Any] = {"_class_name": pipeline_class, "_diffusers_version": "0.30.0"}
    for name, config in derived.components.items():
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        library = "transformers" if "architectures" in config else "diffusers"
        index[name] = [library, config["architectures"][0] if library == "transformers" else config["_class_name"]]
    for text in layout.text_encoders:
        tokenizer = text.component.replace("text_encoder", "tokenizer")
        clip_tokenizer(text.pad_token).save_pretrained(str(directory / tokenizer))
        index[tokenizer] = ["transformers", "CLIPTokenizer"]
    (directory / "scheduler").mkdir(exist_ok=True)
    scheduler = {"_class_name": layout.scheduler_class, **layout.scheduler}
    (directory / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2))
    index["scheduler"] = ["diffusers", layout.scheduler_class]
    if derived.family.safety_checker:
        index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
    (directory / "model_index.json").write_text(json.dumps(index, indent=2))
    return directory


# --- loading -------------------------------------------------------------------------------------------------


def load_single_file(
    cls: Any,
    path: Path,
    family: ModelFamily,
    kwargs: dict[str, Any],
    on_derived: Callable[[DerivedConfigs], None] | None = None,
) -> Any:
    """The pipeline `cls` over the checkpoint at `path`, offline: configs from its shapes and the family."""
    kwargs = {key: value for key, value in kwargs.items() if key != "low_cpu_mem_usage"}
    try:
        derived = derive_configs(read_shapes(path), family)
    except NotACheckpoint as exc:
        raise ModelUnavailable(str(exc)) from None
    except UnknownArchitecture as exc:
        raise ModelUnavailable(
            f"{path.name} does not have the architecture of a {family.title} checkpoint ({exc}); if it is of another "
            "family, say which with --model-family"
        ) from None
    if on_derived is not None:
        on_derived(derived)
    with tempfile.TemporaryDirectory(prefix="opendream-single-file-") as scratch:
        folder = write_config_folder(Path(scratch), derived, cls.__name__)
        try:
            return cls.from_single_file(str(path), config=str(folder), local_files_only=True, **kwargs)
        except Exception as exc:
            raise ModelUnavailable(
                f"{path.name} could not be loaded as a {family.title} checkpoint ({type(exc).__name__}: "
                f"{str(exc)[:300]}): is it complete, and of that family (--model-family overrides)?"
            ) from None
