"""Single-file checkpoints (the original CompVis / Stability / A1111 / ComfyUI key layout), loaded offline.

diffusers' `from_single_file` converts the weights itself, but it wants each component's diffusers config (and
the tokenizers and scheduler) from the hub. Here they come from the file and from Opendream:

- the architecture of the UNet, the VAE and the text encoders is read from the tensor shapes (as ComfyUI's model
  detection does), so a fine-tune, a pruned file or a model of another size of a known family loads as it is;
- what the weights cannot tell is a fact of the family, in `LAYOUTS` below: attention heads, activation
  functions, the padding token, the scheduler's training configuration, the VAE's latent scaling;
- the tokenizers are CLIP's own vocabulary and T5's, shipped (engine.models.clip_tokenizer, t5_tokenizer).

SD 3 / 3.5 and FLUX.1 files (Stability's, BFL's and ComfyUI's layouts) are read the same way: the transformer's
depth, width, heads and embeddings from its shapes, the CLIP and T5 encoders from theirs. A file without its
text encoders or VAE (BFL's FLUX files hold the transformer alone) takes them from separate files, or is refused
naming what it lacks; SD 3 runs without T5. fp8 tensors are upcast to the render dtype as they load, and ComfyUI's
scaled fp8 weights are multiplied back by their scales as they are read.

They are written as an ordinary diffusers config folder, which `from_single_file(config=folder,
local_files_only=True)` reads: nothing is downloaded for a single file.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import tempfile
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import ModelUnavailable
from engine.models.checkpoint import SAFETENSORS_SUFFIXES, NotACheckpoint, read_shapes
from engine.models.families import ModelFamily

UNET = "model.diffusion_model."
VAE_PREFIXES = ("first_stage_model.", "vae.")
TEXT_ENCODERS = "text_encoders."  # SD 3's and ComfyUI's files: text_encoders.clip_l/clip_g/t5xxl.transformer.
# What is not the denoiser in a file whose transformer has no prefix (BFL's FLUX files)
NOT_DENOISER = (TEXT_ENCODERS, *VAE_PREFIXES, "cond_stage_model.", "conditioner.")
Shapes = Mapping[str, tuple[int, ...]]
Config = dict[str, Any]


@dataclass(frozen=True)
class TextEncoderLayout:
    """Where one text encoder's weights lie in a checkpoint, and what its shapes do not say."""

    component: str  # the pipeline's component name
    model_class: str  # transformers class
    prefix: str
    naming: str  # "clip" (transformers names), "open_clip" (OpenCLIP names: resblocks, in_proj) or "t5"
    hidden_act: str
    pad_token: str
    title: str = "the text encoder"  # how a refusal names it when the file lacks it
    # SD 2.x conditions on the penultimate layer of OpenCLIP ViT-H (LDM's `layer: penultimate`): Stability's
    # files hold all 24 layers, the last one unused, and diffusers' SD 2.x configs leave it out. OpenCLIP towers
    # are of even depth, so an odd count means the unused layer was already dropped (a file converted from a
    # diffusers folder).
    skip_last_layer: bool = False
    # An encoder the pipeline runs without (SD 3's T5: diffusers passes zeros in its place): a file lacking it
    # loads, and the library says this about it
    optional_note: str = ""

    @property
    def role(self) -> str:
        """Its part's name in ComfyUI's layout and in models.toml (clip_l, clip_g, t5xxl)."""
        return self.prefix.split(".")[1]


@dataclass(frozen=True)
class CheckpointLayout:
    """A family's original checkpoint format: the facts of its architecture that the shapes leave open."""

    text_encoders: tuple[TextEncoderLayout, ...]
    scheduler_class: str
    scheduler: MappingProxyType[str, Any]
    # A transformer with a guidance embedding (FLUX.1 dev, not schnell) was trained with this scheduler instead
    guidance_scheduler: MappingProxyType[str, Any] | None = None
    # Where a model's repositories are, for a refusal to point at (a file lacking components)
    reference: str = ""
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


def _dit_clip(component: str, name: str, model_class: str, act: str, pad: str, title: str) -> TextEncoderLayout:
    """A CLIP tower as SD 3's and ComfyUI's files hold it: transformers' names under text_encoders.NAME.transformer."""
    return TextEncoderLayout(component, model_class, f"{TEXT_ENCODERS}{name}.transformer.text_model.", "clip", act,
                             pad, title)  # fmt: skip


# T5-XXL as SD 3's and ComfyUI's files hold it (its component name differs: text_encoder_3 in SD 3, _2 in FLUX)
_T5XXL = TextEncoderLayout("", "T5EncoderModel", f"{TEXT_ENCODERS}t5xxl.transformer.", "t5", "gelu_new", "<pad>",
                           "T5-XXL (text_encoders.t5xxl)")  # fmt: skip
# The scheduler_config.json of stabilityai/stable-diffusion-3(.5)-* and of black-forest-labs/FLUX.1-schnell / -dev
_FLOW = {"num_train_timesteps": 1000, "shift": 3.0}
_FLUX_SCHNELL = {**_FLOW, "shift": 1.0, "use_dynamic_shifting": False, "base_shift": 0.5, "max_shift": 1.15,
                 "base_image_seq_len": 256, "max_image_seq_len": 4096}  # fmt: skip
# SD 3 runs without T5 (Stability's sd3_medium_incl_clips.safetensors; users drop it to save memory), FLUX cannot.
# Its first words, before " (", are what the model picker shows (engine.defaults.choice_label).
_WITHOUT_T5 = (
    "runs without T5-XXL (none in the file or the models directory): prompts are followed less closely, long ones "
    "especially; a T5-XXL put in text_encoders/ is used once the models are scanned again (or the next start)"
)
LAYOUTS["sd3"] = CheckpointLayout(
    (
        _dit_clip(
            "text_encoder",
            "clip_l",
            "CLIPTextModelWithProjection",
            "quick_gelu",
            "<|endoftext|>",
            "CLIP-L (text_encoders.clip_l)",
        ),
        _dit_clip(
            "text_encoder_2", "clip_g", "CLIPTextModelWithProjection", "gelu", "!", "CLIP-G (text_encoders.clip_g)"
        ),
        replace(_T5XXL, component="text_encoder_3", optional_note=_WITHOUT_T5),
    ),
    "FlowMatchEulerDiscreteScheduler",
    MappingProxyType(_FLOW),
    reference="the model's diffusers folder (stabilityai/stable-diffusion-3.5-medium, …)",
)
LAYOUTS["flux"] = CheckpointLayout(
    (
        _dit_clip(
            "text_encoder", "clip_l", "CLIPTextModel", "quick_gelu", "<|endoftext|>", "CLIP-L (text_encoders.clip_l)"
        ),
        replace(_T5XXL, component="text_encoder_2"),
    ),
    "FlowMatchEulerDiscreteScheduler",
    MappingProxyType(_FLUX_SCHNELL),
    guidance_scheduler=MappingProxyType({**_FLUX_SCHNELL, "shift": 3.0, "use_dynamic_shifting": True}),
    reference="the model's diffusers folder (black-forest-labs/FLUX.1-schnell or FLUX.1-dev)",
)
# What the weights of a FLUX.1 transformer cannot say: its rotary position axes (no weights), for heads of 128
FLUX_ROPE_AXES = (16, 56, 56)
# SD 3's MMDiT: heads of 64 channels (depth x 64 wide, as ComfyUI reads it); SD 3.5's q/k norms show theirs
SD3_HEAD_CHANNELS = 64
# T5 v1.1's (google/t5-v1_1-xxl's config.json): what its tensors do not say
_T5_FACTS: dict[str, Any] = {
    "relative_attention_max_distance": 128,
    "layer_norm_epsilon": 1e-6,
    "dropout_rate": 0.1,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
    "is_encoder_decoder": False,
    "use_cache": False,
}


class UnknownArchitecture(ValueError):
    """The tensors do not have the shape of the family's architecture."""


class MissingComponents(ValueError):
    """The file holds some of the model's components, not all (a FLUX transformer without VAE or text encoders)."""

    def __init__(self, present: list[str], missing: list[str], optional: list[str] | None = None) -> None:
        also = f" (nor {', '.join(optional)}, which it can run without)" if optional else ""
        super().__init__(f"it holds {', '.join(present) or 'none of them'}, not {', '.join(missing)}{also}")
        self.present, self.missing = present, missing


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
            width = unet[f"input_blocks.{index}.0.out_layers.3.weight"][0]
            depth = _count(unet, f"input_blocks.{index}.1.transformer_blocks.{{}}.")
            levels[-1].append((width, depth))
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
    heads: int | list[int]
    if layout.attention_heads is not None:
        heads = layout.attention_heads
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
        "shift_factor": family.shift_factor,  # SD 3 / FLUX: latents are shifted, then scaled
        # SD 3's and FLUX's VAEs have no quant convolutions
        "use_quant_conv": "quant_conv.weight" in vae,
        "use_post_quant_conv": "post_quant_conv.weight" in vae,
    }


def t5_config(shapes: Shapes, text: TextEncoderLayout) -> Config:
    """T5EncoderModel's config from its tensors: width, vocabulary, depth, heads (the relative attention bias has
    one column per head), key/value width, MLP width and whether it is gated (T5 v1.1's wi_0 / wi_1)."""
    p = text.prefix
    shared = shapes.get(f"{p}shared.weight")
    attention = f"{p}encoder.block.0.layer.0.SelfAttention."
    bias, query = shapes.get(f"{attention}relative_attention_bias.weight"), shapes.get(f"{attention}q.weight")
    gated = f"{p}encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in shapes
    mlp = shapes.get(f"{p}encoder.block.0.layer.1.DenseReluDense.{'wi_0' if gated else 'wi'}.weight")
    if shared is None or bias is None or query is None or mlp is None:
        raise UnknownArchitecture(f"no T5 encoder under {p} in the file")
    return {
        "architectures": [text.model_class],
        "model_type": "t5",
        "vocab_size": shared[0],
        "d_model": shared[1],
        "num_layers": _count(shapes, f"{p}encoder.block.{{}}."),
        "num_heads": bias[1],
        "relative_attention_num_buckets": bias[0],
        "d_kv": query[0] // bias[1],
        "d_ff": mlp[0],
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        **_T5_FACTS,
    }


def text_encoder_config(shapes: Shapes, text: TextEncoderLayout) -> Config:
    if text.naming == "t5":
        return t5_config(shapes, text)
    p = text.prefix
    if text.naming == "clip":
        tokens = shapes.get(f"{p}embeddings.token_embedding.weight")
        positions = shapes.get(f"{p}embeddings.position_embedding.weight")
        layers = _count(shapes, f"{p}encoder.layers.{{}}.")
        mlp = shapes.get(f"{p}encoder.layers.0.mlp.fc1.weight")
        # SD 3's CLIP-G keeps its projection next to text_model (a Linear: out x in); CLIP-L's is the identity
        linear = shapes.get(p.removesuffix("text_model.") + "text_projection.weight")
        projection: tuple[int, ...] | None = (linear[1], linear[0]) if linear else None
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


def denoiser_tensors(shapes: Shapes) -> dict[str, tuple[int, ...]]:
    """The transformer's tensors without their prefix: under model.diffusion_model. (Stability, ComfyUI), or
    everything that is no other component (BFL's files hold the transformer alone, unprefixed)."""
    if any(name.startswith(UNET) for name in shapes):
        return {name[len(UNET) :]: shape for name, shape in shapes.items() if name.startswith(UNET)}
    return {name: shape for name, shape in shapes.items() if not name.startswith(NOT_DENOISER)}


def sd3_transformer_config(shapes: Shapes, family: ModelFamily) -> Config:
    """SD3Transformer2DModel's config from the MMDiT's tensors, as ComfyUI's model detection reads them: depth,
    width (64 x depth in every SD 3 / 3.5), patch, text and pooled widths, the position table's side, SD 3.5's
    q/k norms and its second attention ("MMDiT-X") in the first layers."""
    t = denoiser_tensors(shapes)
    if "x_embedder.proj.weight" not in t:
        raise UnknownArchitecture("no MMDiT (model.diffusion_model.x_embedder.proj.weight) in the file")
    width, in_channels, patch, _ = t["x_embedder.proj.weight"]
    heads_of = t.get("joint_blocks.0.x_block.attn.ln_q.weight", (SD3_HEAD_CHANNELS,))[0]
    layers = _count(t, "joint_blocks.{}.")
    return {
        "_class_name": "SD3Transformer2DModel",
        "sample_size": family.native_size // 8,
        "patch_size": patch,
        "in_channels": in_channels,
        "out_channels": t["final_layer.linear.weight"][0] // (patch * patch),
        "num_layers": layers,
        "attention_head_dim": heads_of,
        "num_attention_heads": width // heads_of,
        "joint_attention_dim": t["context_embedder.weight"][1],
        "caption_projection_dim": t["context_embedder.weight"][0],
        "pooled_projection_dim": t["y_embedder.mlp.0.weight"][1],
        "pos_embed_max_size": math.isqrt(t["pos_embed"][1]),
        "dual_attention_layers": [i for i in range(layers) if f"joint_blocks.{i}.x_block.attn2.qkv.weight" in t],
        "qk_norm": "rms_norm" if "joint_blocks.0.x_block.attn.ln_q.weight" in t else None,
    }


def flux_transformer_config(shapes: Shapes, family: ModelFamily) -> Config:
    """FluxTransformer2DModel's config from its tensors: double- and single-stream depths, width, heads (the q/k
    norms are one head wide), text and pooled widths, and the guidance embedding that tells dev from schnell."""
    t = denoiser_tensors(shapes)
    if "img_in.weight" not in t:
        raise UnknownArchitecture("no FLUX transformer (img_in.weight) in the file")
    width, in_channels = t["img_in.weight"]
    heads_of = t["double_blocks.0.img_attn.norm.query_norm.scale"][0]
    if sum(FLUX_ROPE_AXES) != heads_of:
        raise UnknownArchitecture(f"heads of {heads_of} channels: FLUX.1's rotary axes {FLUX_ROPE_AXES} need 128")
    return {
        "_class_name": "FluxTransformer2DModel",
        "patch_size": 1,  # FLUX packs 2 x 2 latents into channels before the transformer (64 = 16 x 4)
        "in_channels": in_channels,
        # None: as many as it reads, as black-forest-labs/FLUX.1-*'s configs say
        "out_channels": None if t["final_layer.linear.weight"][0] == in_channels else t["final_layer.linear.weight"][0],
        "num_layers": _count(t, "double_blocks.{}."),
        "num_single_layers": _count(t, "single_blocks.{}."),
        "attention_head_dim": heads_of,
        "num_attention_heads": width // heads_of,
        "joint_attention_dim": t["txt_in.weight"][1],
        "pooled_projection_dim": t["vector_in.in_layer.weight"][1],
        "guidance_embeds": "guidance_in.in_layer.weight" in t,
        "axes_dims_rope": list(FLUX_ROPE_AXES),
    }


# The denoiser's config, by the family's denoiser class
DENOISER_CONFIGS: dict[str, Callable[[Shapes, ModelFamily], Config]] = {
    "SD3Transformer2DModel": sd3_transformer_config,
    "FluxTransformer2DModel": flux_transformer_config,
}


@dataclass(frozen=True)
class DerivedConfigs:
    family: ModelFamily
    components: dict[str, Config]  # component -> config.json
    digest: str  # sha256 of the configs, for the fingerprint
    scheduler: Config = field(default_factory=dict)  # scheduler_config.json
    companions: dict[str, str] = field(default_factory=dict)  # part -> the separate file it was taken from
    without: tuple[str, ...] = ()  # the optional parts it runs without (SD 3: t5xxl)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"configs_sha256": self.digest, "derived_from": "tensor shapes",
                                     "family": self.family.name}  # fmt: skip
        # the files' names, not their paths: a fingerprint travels with the document
        names = {part: Path(file).name for part, file in self.companions.items()}
        if names:
            described["companions"] = names
        if self.without:  # said outright (not only by the configs' digest): a T5 added later re-renders
            described["without"] = list(self.without)
        return described

    @property
    def note(self) -> str | None:
        """What running without its optional parts costs (the library lists it), or None."""
        texts = [text for text in LAYOUTS[self.family.name].text_encoders if text.role in self.without]
        return "; ".join(text.optional_note for text in texts) or None

    def absent_components(self) -> dict[str, None]:
        """The pipeline components it runs without (an encoder and its tokenizer), to pass as None."""
        components = [text.component for text in LAYOUTS[self.family.name].text_encoders if text.role in self.without]
        return {name: None for component in components
                for name in (component, component.replace("text_encoder", "tokenizer"))}  # fmt: skip


def _dit_components(
    shapes: Shapes, family: ModelFamily, layout: CheckpointLayout
) -> tuple[dict[str, Config], tuple[str, ...]]:
    """A transformer family's configs and the optional parts it lacks (SD 3's T5); a file lacking a component it
    cannot run without is refused naming each one missing."""
    optional = {text.component: text.role for text in layout.text_encoders if text.optional_note}
    readers: list[tuple[str, str, Callable[[], Config]]] = [
        (family.denoiser, "the transformer", partial(DENOISER_CONFIGS[family.denoiser_class], shapes, family)),
        ("vae", "the VAE (first_stage_model.)", partial(vae_config, shapes, family)),
        *((text.component, text.title, partial(text_encoder_config, shapes, text)) for text in layout.text_encoders),
    ]
    components: dict[str, Config] = {}
    present: list[str] = []
    missing: list[str] = []
    absent: dict[str, str] = {}  # role -> title of the optional parts lacking
    for component, title, read in readers:
        try:
            components[component] = read()
            present.append(title)
        except (UnknownArchitecture, KeyError):  # its tensors are absent (or not all there)
            if component in optional:
                absent[optional[component]] = title
            else:
                missing.append(title)
    if missing:
        raise MissingComponents(present, missing, list(absent.values()))
    return components, tuple(absent)


def derive_configs(shapes: Shapes, family: ModelFamily) -> DerivedConfigs:
    layout = LAYOUTS.get(family.name)
    if layout is None:
        raise UnknownArchitecture(f"single files of {family.title} cannot be loaded yet: use a diffusers folder")
    without: tuple[str, ...] = ()
    if family.denoiser_class in DENOISER_CONFIGS:
        components, without = _dit_components(shapes, family, layout)
    else:
        components = {"unet": unet_config(shapes, family, layout), "vae": vae_config(shapes, family)}
        for text in layout.text_encoders:
            components[text.component] = text_encoder_config(shapes, text)
    guided = components.get(family.denoiser, {}).get("guidance_embeds", False)
    schedule = layout.guidance_scheduler if guided and layout.guidance_scheduler else layout.scheduler
    scheduler = {"_class_name": layout.scheduler_class, **schedule}
    digest = hashlib.sha256(json.dumps([components, scheduler], sort_keys=True).encode()).hexdigest()
    return DerivedConfigs(family, components, digest, scheduler, without=without)


# --- companions: the parts a transformer-only file lacks, from the models directory -------------------------

# Where ComfyUI keeps them, under the models directory (the folder above the file's own: models/unet,
# models/diffusion_models or the library's checkpoints/): VAEs in vae/, text encoders in text_encoders/ or clip/
COMPANION_FOLDERS = ("vae", "text_encoders", "clip")
# A separate file's kind, from the one tensor that tells it: kind -> (that tensor, its dimension giving the width:
# a VAE's latent channels, an encoder's text width). Files hold them unprefixed (ComfyUI's, BFL's ae.safetensors)
# or with the all-in-one prefix of a VAE.
COMPANION_KINDS: dict[str, tuple[str, int]] = {
    "vae": ("decoder.conv_in.weight", 1),
    "clip": ("text_model.embeddings.token_embedding.weight", 1),
    "t5": ("encoder.block.0.layer.0.SelfAttention.q.weight", 1),
}
_OWN_PREFIXES = ("", *VAE_PREFIXES)
# A part of the model (a role) -> the kind of file that serves it and the prefix its tensors have in an all-in-one
# file (so that the configs are derived, and diffusers converts them, exactly as for a whole checkpoint)
COMPANION_ROLES: dict[str, tuple[str, str]] = {
    "vae": ("vae", VAE_PREFIXES[0]),
    "clip_l": ("clip", f"{TEXT_ENCODERS}clip_l.transformer."),
    "clip_g": ("clip", f"{TEXT_ENCODERS}clip_g.transformer."),
    "t5xxl": ("t5", f"{TEXT_ENCODERS}t5xxl.transformer."),
}


# OpenAI's CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 text towers: width -> the other one's (SD 3 pools both)
RELEASED_CLIPS = {768: 1280, 1280: 768}


@dataclass(frozen=True)
class CompanionFile:
    path: Path
    kind: str  # a key of COMPANION_KINDS
    width: int
    prefix: str  # its tensors' own prefix in the file


class AmbiguousCompanions(ValueError):
    """Several files fit one part and none is named for it."""


def companion_file(path: Path) -> CompanionFile | None:
    """What a separate VAE / CLIP / T5 file is, from its header alone; None for anything else."""
    try:
        shapes = read_shapes(path)
    except (NotACheckpoint, OSError):
        return None
    for kind, (key, dimension) in COMPANION_KINDS.items():
        for prefix in _OWN_PREFIXES:
            shape = shapes.get(prefix + key)
            if shape is not None and len(shape) > dimension:
                return CompanionFile(path, kind, shape[dimension], prefix)
    return None


def scan_companions(models_dir: Path) -> list[CompanionFile]:
    files = (p for folder in COMPANION_FOLDERS for suffix in SAFETENSORS_SUFFIXES
             for p in sorted((models_dir / folder).glob(f"*{suffix}")))  # fmt: skip
    return [found for path in files if (found := companion_file(path)) is not None]


def _roles(layout: CheckpointLayout) -> list[str]:
    """The parts of a transformer family other than the transformer: the VAE and each text encoder's role."""
    return ["vae", *(text.role for text in layout.text_encoders)]


def _has(shapes: Shapes, role: str) -> bool:
    if role == "vae":
        return any(f"{prefix}encoder.conv_in.weight" in shapes for prefix in VAE_PREFIXES)
    return any(name.startswith(COMPANION_ROLES[role][1]) for name in shapes)


def _fits(role: str, file: CompanionFile, others: list[CompanionFile], needs: Config) -> bool:
    """Whether `file` can serve `role` for a transformer needing `needs` (its config): the widths it reads. FLUX's
    pooled input is CLIP-L's width; SD 3's is CLIP-L's and CLIP-G's together, CLIP-L the narrower of the two."""
    if COMPANION_ROLES[role][0] != file.kind:
        return False
    pooled, text = needs.get("pooled_projection_dim", 0), needs.get("joint_attention_dim", 0)
    # the released encoders' widths also tell SD 3's CLIP-L (768) and CLIP-G (1280) apart when one is alone
    clips = {other.width for other in others if other.kind == "clip"} | {RELEASED_CLIPS.get(file.width, 0)}
    rules: dict[str, Callable[[], bool]] = {
        "vae": lambda: file.width == 16,  # SD 3's and FLUX's 16 latent channels
        "t5xxl": lambda: file.width == text,
        "clip_l": lambda: file.width == pooled or (pooled - file.width in clips and file.width < pooled / 2),
        "clip_g": lambda: pooled - file.width in clips and file.width > pooled / 2,
    }
    return rules[role]()


def choose_companions(
    shapes: Shapes, family: ModelFamily, found: list[CompanionFile], named: Mapping[str, Path] | None = None
) -> dict[str, CompanionFile]:
    """The files serving the parts the checkpoint lacks: the one named for a part, else the only one that fits it.
    Several fitting and none named is refused, naming them (a user keeps fp16 and fp8 T5s side by side)."""
    layout = LAYOUTS[family.name]
    needs = DENOISER_CONFIGS[family.denoiser_class](shapes, family)
    chosen: dict[str, CompanionFile] = {}
    for role in (role for role in _roles(layout) if not _has(shapes, role)):
        if named and role in named:
            file = companion_file(named[role])
            if file is None or not _fits(role, file, [*found, file], needs):
                raise UnknownArchitecture(f"{named[role].name}, named for {role}, is not a {role} of this model")
            chosen[role] = file
            continue
        fitting = [file for file in found if _fits(role, file, found, needs)]
        if len(fitting) > 1:
            names = ", ".join(file.path.name for file in fitting)
            raise AmbiguousCompanions(f"several files fit its {role} ({names}): name one as {role} in models.toml")
        chosen.update({role: fitting[0]} if fitting else {})
    return chosen


def with_companions(shapes: Shapes, chosen: Mapping[str, CompanionFile]) -> dict[str, tuple[int, ...]]:
    """The checkpoint's shapes with each companion's under its all-in-one prefix: a whole checkpoint's header."""
    merged = dict(shapes)
    for role, file in chosen.items():
        prefix = COMPANION_ROLES[role][1]
        merged.update({prefix + k[len(file.prefix) :]: s for k, s in read_shapes(file.path).items()
                       if k.startswith(file.prefix)})  # fmt: skip
    return merged


# --- reading tensors: ComfyUI's scaled fp8 -------------------------------------------------------------------

# ComfyUI's scaled fp8 files (t5xxl_fp8_e4m3fn_scaled.safetensors, sd3.5_large_fp8_scaled.safetensors, …) keep each
# Linear's weight divided by a scale stored beside it: `scale_weight` (the older layout, marked by a `scaled_fp8`
# tensor) or `weight_scale` (the newer, with a `comfy_quant` description). Read here, the weight is multiplied
# back (in fp32, then cast to the render dtype), as ComfyUI does when it does not compute in fp8; what only fp8
# matrix products read (the input scales) is dropped. Plain fp8 tensors need nothing: they are upcast on loading.
WEIGHT_SCALES = ("scale_weight", "weight_scale")
FP8_ONLY = ("scaled_fp8", "scale_input", "input_scale", "comfy_quant")
# NVIDIA's 4-bit format (a second, per-block scale): not dequantised here
UNSUPPORTED_SCALES = {"weight_scale_2": "nvfp4"}


def is_scaled(shapes: Shapes) -> bool:
    """Whether a file holds ComfyUI's scaled fp8 weights (told from its tensor names)."""
    return any(name.rpartition(".")[2] in (*WEIGHT_SCALES, *FP8_ONLY) for name in shapes)


def dequantized(tensors: dict[str, Any]) -> dict[str, Any]:
    """The tensors as the weights they stand for: a scaled fp8 weight times its scale; the scales dropped."""
    import torch

    leaves = {name: name.rpartition(".") for name in tensors}
    unsupported = {UNSUPPORTED_SCALES[leaf] for _, _, leaf in leaves.values() if leaf in UNSUPPORTED_SCALES}
    if unsupported:
        raise UnknownArchitecture(f"{', '.join(sorted(unsupported))} quantised weights cannot be loaded yet")
    scales = {base: tensors[name] for name, (base, _, leaf) in leaves.items() if leaf in WEIGHT_SCALES}
    out = {}
    for name, (base, _, leaf) in leaves.items():
        if leaf in WEIGHT_SCALES or leaf in FP8_ONLY:
            continue
        scale = scales.get(base) if leaf == "weight" else None
        tensor = tensors[name]
        out[name] = tensor if scale is None else tensor.to(torch.float32) * scale.to(torch.float32)
    return out


def read_tensors(path: Path, keep: Callable[[str], bool]) -> dict[str, Any]:
    """The file's tensors whose names `keep` takes (a .safetensors file reads those alone), dequantised."""
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return dequantized({name: handle.get_tensor(name) for name in handle.keys() if keep(name)})  # noqa: SIM118
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    checkpoint = load_single_file_checkpoint(str(path), local_files_only=True)
    return dequantized({name: tensor for name, tensor in checkpoint.items() if keep(name)})


def _companion_tensors(role: str, file: CompanionFile) -> dict[str, Any]:
    prefix = COMPANION_ROLES[role][1]
    tensors = read_tensors(file.path, lambda name: name.startswith(file.prefix))
    return {prefix + name[len(file.prefix) :]: tensor for name, tensor in tensors.items()}


def _load_companion(role: str, file: CompanionFile, component: str, folder: Path, kwargs: dict[str, Any]) -> Any:
    """One part from its own file, by diffusers' single-file loaders over its tensors under the all-in-one
    prefix: the VAE by AutoencoderKL.from_single_file, the encoders by the functions a whole file's go through."""
    import transformers
    from diffusers import AutoencoderKL
    from diffusers.loaders import single_file_utils as sfu

    dtype = kwargs.get("torch_dtype")
    tensors = _companion_tensors(role, file)
    if role == "vae":
        extra = {"torch_dtype": dtype} if dtype is not None else {}
        return AutoencoderKL.from_single_file(tensors, config=str(folder), subfolder=component,
                                              local_files_only=True, **extra)  # fmt: skip
    config = json.loads((folder / component / "config.json").read_text())
    cls = getattr(transformers, config["architectures"][0])
    create = (
        sfu.create_diffusers_t5_model_from_checkpoint if role == "t5xxl" else sfu.create_diffusers_clip_model_from_ldm
    )
    return create(cls, tensors, subfolder=component, config=str(folder), torch_dtype=dtype, local_files_only=True)


def _component_of(role: str, layout: CheckpointLayout) -> str:
    if role == "vae":
        return "vae"
    return next(text.component for text in layout.text_encoders if text.role == role)


def companion_models(chosen: Mapping[str, CompanionFile], family: ModelFamily, folder: Path,
                     kwargs: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    layout = LAYOUTS[family.name]
    return {
        (component := _component_of(role, layout)): _load_companion(role, file, component, folder, kwargs)
        for role, file in chosen.items()
    }


# --- the config folder ---------------------------------------------------------------------------------------


def write_config_folder(directory: Path, derived: DerivedConfigs, pipeline_class: str) -> Path:
    """An ordinary diffusers pipeline folder without weights: model_index.json, each component's config, the
    tokenizers and the scheduler."""
    from engine.models.clip_tokenizer import clip_tokenizer
    from engine.models.t5_tokenizer import t5_tokenizer

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
        if text.component not in derived.components:  # an optional encoder the file lacks: none, and no tokenizer
            index.update({text.component: [None, None], tokenizer: [None, None]})
        elif text.naming == "t5":
            t5_tokenizer().save_pretrained(str(directory / tokenizer))
            index[tokenizer] = ["transformers", "T5TokenizerFast"]
        else:
            clip_tokenizer(text.pad_token).save_pretrained(str(directory / tokenizer))
            index[tokenizer] = ["transformers", "CLIPTokenizer"]
    (directory / "scheduler").mkdir(exist_ok=True)
    scheduler = derived.scheduler or {"_class_name": layout.scheduler_class, **layout.scheduler}
    (directory / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2))
    index["scheduler"] = ["diffusers", scheduler["_class_name"]]
    if derived.family.safety_checker:
        index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
    elif derived.family.denoiser != "unet":  # SD 3 / FLUX pipelines' optional IP-Adapter image encoder
        index.update(image_encoder=[None, None], feature_extractor=[None, None])
    (directory / "model_index.json").write_text(json.dumps(index, indent=2))
    return directory


# --- loading -------------------------------------------------------------------------------------------------

# diffusers' FLUX converter splits each single block's fused q/k/v/MLP projection at FLUX.1's width, written in
# as a number: every released FLUX.1 (dev, schnell, their fine-tunes) is 3072 wide, a narrower model (the tests'
# stand-ins) is not. The same function runs here with that one line reading the width from the file.
_FLUX_WIDTH_LINE = "inner_dim = 3072"
_FLUX_WIDTH_FROM_FILE = 'inner_dim = checkpoint["img_in.weight"].shape[0]'


@cache
def flux_converter() -> Callable[..., dict[str, Any]]:
    """diffusers' convert_flux_transformer_checkpoint_to_diffusers, its width read from the checkpoint (it is
    diffusers' own where a later diffusers no longer writes the width in)."""
    from diffusers.loaders import single_file_utils

    original = single_file_utils.convert_flux_transformer_checkpoint_to_diffusers
    source = textwrap.dedent(inspect.getsource(original))
    if source.count(_FLUX_WIDTH_LINE) != 1:
        return original
    namespace = dict(vars(single_file_utils))
    code = compile(source.replace(_FLUX_WIDTH_LINE, _FLUX_WIDTH_FROM_FILE), single_file_utils.__file__, "exec")
    exec(code, namespace)  # diffusers' own source, one constant changed: nothing from the checkpoint runs
    return namespace[original.__name__]


def _flux_transformer(path: Path, folder: Path, kwargs: dict[str, Any]) -> Any:
    """The FLUX transformer of the file, converted by diffusers' converter at the file's width, then loaded by
    diffusers' from_single_file (its keys already diffusers', so nothing is converted again)."""
    from diffusers import FluxTransformer2DModel

    tensors = read_tensors(path, lambda name: not name.startswith(NOT_DENOISER))
    converted = flux_converter()(checkpoint=tensors)
    if tensors:  # the converter pops what it converts: anything left is not FLUX.1's
        raise UnknownArchitecture(
            f"{len(tensors)} tensors the FLUX.1 transformer does not have ({next(iter(tensors))})"
        )
    dtype = {key: value for key, value in kwargs.items() if key in ("torch_dtype", "dtype")}
    return FluxTransformer2DModel.from_single_file(
        converted, config=str(folder), subfolder="transformer", local_files_only=True, **dtype
    )


def _sd3_transformer(path: Path, folder: Path, kwargs: dict[str, Any]) -> Any:
    """The MMDiT of a scaled fp8 file, its weights dequantised, converted by diffusers' from_single_file."""
    from diffusers import SD3Transformer2DModel

    tensors = read_tensors(path, lambda name: not name.startswith(NOT_DENOISER))
    dtype = {key: value for key, value in kwargs.items() if key in ("torch_dtype", "dtype")}
    return SD3Transformer2DModel.from_single_file(
        tensors, config=str(folder), subfolder="transformer", local_files_only=True, **dtype
    )


# Denoisers that are converted here rather than by the pipeline's from_single_file, by class
DENOISER_LOADERS: dict[str, Callable[[Path, Path, dict[str, Any]], Any]] = {
    "FluxTransformer2DModel": _flux_transformer,
}
# A scaled fp8 file's: every component is read here (diffusers would load its weights without their scales)
SCALED_DENOISER_LOADERS = {**DENOISER_LOADERS, "SD3Transformer2DModel": _sd3_transformer}


def _own_parts(path: Path, shapes: Shapes, family: ModelFamily, derived: DerivedConfigs,
               chosen: Mapping[str, CompanionFile]) -> dict[str, CompanionFile]:  # fmt: skip
    """The VAE and text encoders a scaled fp8 file holds itself, read as parts of it (dequantised)."""
    present = [role for role in _roles(LAYOUTS[family.name]) if role not in chosen and role not in derived.without]
    vae = next((prefix for prefix in VAE_PREFIXES if f"{prefix}encoder.conv_in.weight" in shapes), VAE_PREFIXES[0])
    return {role: CompanionFile(path, COMPANION_ROLES[role][0], 0, vae if role == "vae" else COMPANION_ROLES[role][1])
            for role in present}  # fmt: skip


def _finish_t5(pipe: Any, family: ModelFamily) -> None:
    """What diffusers' T5 loading from a single file leaves undone. T5's encoder reads the shared embedding:
    ComfyUI's files hold it once (`shared.weight`), diffusers loads that alone and leaves the encoder's copy
    empty (on the meta device), so it is pointed at the shared one. And the model is left in training mode, its
    dropout on (every prompt encoded differently each time): it is put in eval mode, as from_pretrained does."""
    for text in LAYOUTS[family.name].text_encoders:
        encoder = getattr(pipe, text.component, None)
        if text.naming == "t5" and encoder is not None:
            encoder.set_input_embeddings(encoder.get_input_embeddings())
            encoder.eval()


def file_configs(path: Path, family: ModelFamily, named: Mapping[str, Path] | None = None) -> DerivedConfigs:
    """A file's configs with the parts it takes from separate files (what the fingerprint records before it loads)."""
    return _derive(path, family, {}, named)


def _missing(
    path: Path, family: ModelFamily, exc: MissingComponents, chosen: Mapping[str, CompanionFile]
) -> ModelUnavailable:
    layout = LAYOUTS[family.name]
    above = path.parent.parent.name or "models"  # its name only: the library lists this to every client
    taken = (
        f" (with {', '.join(file.path.name for file in chosen.values())} from the models directory)" if chosen else ""
    )
    return ModelUnavailable(
        f"{path.name} is not a whole {family.title} checkpoint: {exc}{taken}. Put them in the models directory "
        f"above its folder (the VAE in {above}/vae/, the text encoders in {above}/text_encoders/ or {above}/clip/), "
        f"or use a checkpoint that includes them (as ComfyUI's and Stability's all-in-one files do) or "
        f"{layout.reference}"
    )


def find_companions(
    path: Path, shapes: Shapes, family: ModelFamily, named: Mapping[str, Path] | None = None
) -> dict[str, CompanionFile]:
    """The separate files serving what a transformer family's checkpoint lacks (none for the UNet families, whose
    single files are whole), looked for in the models directory above the file's folder."""
    if family.denoiser_class not in DENOISER_CONFIGS:
        return {}
    try:
        return choose_companions(shapes, family, scan_companions(path.parent.parent), named)
    except (UnknownArchitecture, KeyError) as exc:
        if named:
            raise UnknownArchitecture(str(exc)) from None
        return {}  # the transformer itself is not there: refused below, naming it


def _derive(path: Path, family: ModelFamily, chosen: dict[str, CompanionFile],
            named: Mapping[str, Path] | None) -> DerivedConfigs:  # fmt: skip
    """The configs of the file with the companions it needs (put in `chosen`, for a refusal to name them)."""
    shapes = read_shapes(path)
    chosen.update(find_companions(path, shapes, family, named))
    derived = derive_configs(with_companions(shapes, chosen), family)
    return replace(derived, companions={role: str(file.path) for role, file in chosen.items()})


def _as_safetensors(path: Path, scratch: Path) -> Path:
    """The file as diffusers can read it: diffusers tells a safetensors file by its suffix, so a .sft file (early
    FLUX files) is shown to it under a link named .safetensors."""
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES or path.suffix.lower() == ".safetensors":
        return path
    (scratch / "weights").mkdir()
    link = scratch / "weights" / f"{path.stem}.safetensors"
    link.symlink_to(path.resolve())
    return link


def load_single_file(
    cls: Any,
    path: Path,
    family: ModelFamily,
    kwargs: dict[str, Any],
    on_derived: Callable[[DerivedConfigs], None] | None = None,
    named: Mapping[str, Path] | None = None,
) -> Any:
    """The pipeline `cls` over the checkpoint at `path`, offline: configs from its shapes and the family; the
    parts a transformer-only file lacks from the separate files of the models directory (`named`: part -> file)."""
    kwargs = {key: value for key, value in kwargs.items() if key != "low_cpu_mem_usage"}
    chosen: dict[str, CompanionFile] = {}
    try:
        derived = _derive(path, family, chosen, named)
    except NotACheckpoint as exc:
        raise ModelUnavailable(str(exc)) from None
    except AmbiguousCompanions as exc:
        raise ModelUnavailable(f"{path.name} lacks parts of a {family.title} checkpoint and {exc}") from None
    except MissingComponents as exc:
        raise _missing(path, family, exc, chosen) from None
    except UnknownArchitecture as exc:
        raise ModelUnavailable(
            f"{path.name} does not have the architecture of a {family.title} checkpoint ({exc}); if it is of another "
            "family, say which with --model-family"
        ) from None
    if on_derived is not None:
        on_derived(derived)
    scaled = is_scaled(read_shapes(path))
    if scaled and family.denoiser_class not in SCALED_DENOISER_LOADERS:
        raise ModelUnavailable(
            f"{path.name} holds scaled fp8 weights (ComfyUI's …fp8_scaled… layout), which are loaded for SD 3 and "
            f"FLUX files only: use a {family.title} checkpoint in fp16, bf16 or plain fp8"
        )
    if scaled:
        chosen = {**_own_parts(path, read_shapes(path), family, derived, chosen), **chosen}
    loaders = SCALED_DENOISER_LOADERS if scaled else DENOISER_LOADERS
    with tempfile.TemporaryDirectory(prefix="opendream-single-file-") as scratch:
        folder = write_config_folder(Path(scratch), derived, cls.__name__)
        try:
            loader = loaders.get(family.denoiser_class)
            passed = {family.denoiser: loader(path, folder, kwargs)} if loader else {}
            passed.update(companion_models(chosen, family, folder, kwargs))
            passed.update(derived.absent_components())
            readable = str(_as_safetensors(path, Path(scratch)))
            pipe = cls.from_single_file(readable, config=str(folder), local_files_only=True, **passed, **kwargs)
            _finish_t5(pipe, family)
            return pipe
        except Exception as exc:
            raise ModelUnavailable(
                f"{path.name} could not be loaded as a {family.title} checkpoint ({type(exc).__name__}: "
                f"{str(exc)[:300]}): is it complete, and of that family (--model-family overrides)?"
            ) from None


@dataclass(frozen=True)
class PartsPlan:
    """How a transformer family's file will load, told from headers alone (the library's scan)."""

    parts: dict[str, str] = field(default_factory=dict)  # part -> the separate file it takes it from
    problem: str | None = None  # why it cannot be loaded (a part missing, several fitting ones and none named)
    note: str | None = None  # what running without an optional part costs (SD 3 without T5)


def parts_plan(path: Path, family: ModelFamily, named: Mapping[str, Path] | None = None) -> PartsPlan:
    """The parts the file will take from separate files, or why it cannot be loaded, from the headers alone."""
    chosen: dict[str, CompanionFile] = {}
    try:
        derived = _derive(path, family, chosen, named)
    except MissingComponents as exc:
        return PartsPlan(problem=str(_missing(path, family, exc, chosen)))
    except (AmbiguousCompanions, UnknownArchitecture, NotACheckpoint) as exc:
        return PartsPlan(problem=f"{path.name}: {exc}")
    return PartsPlan(derived.companions, note=derived.note)


def part_problem(role: str, path: Path) -> str | None:
    """Why the file named in models.toml for part `role` (clip_l, clip_g, t5xxl, vae) is not one, or None."""
    found = companion_file(path)
    wanted = COMPANION_ROLES[role][0]
    if found is None or found.kind != wanted:
        what = f"a {found.kind} file" if found else "no VAE or text encoder"
        return f"{role} part {path.name} is {what}, not a {wanted}"
    return None
