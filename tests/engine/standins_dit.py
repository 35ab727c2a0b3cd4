"""Tiny random-weight stand-ins of SD 3 and FLUX.1, in both layouts users have them.

    diffusers folder   save_pretrained of a pipeline with the real class structure: MMDiT / FLUX transformer with
                       heads of the real width (SD 3: 64, FLUX: 128, its rotary axes 16 + 56 + 56), a 16-channel VAE,
                       CLIP encoders with CLIP's real 49,408-token vocabulary (SD 3: CLIP-L narrower than CLIP-G, its
                       projection the identity, as SD 3 uses it) and a gated T5 v1.1-shaped encoder with T5's real
                       32,128-row vocabulary; only the widths and depths are tiny
    single file        the folder in the original key layout, as Stability's SD 3 files and ComfyUI's FLUX
                       checkpoints hold it (model.diffusion_model., first_stage_model., text_encoders.clip_l /
                       clip_g / t5xxl.transformer.); or the transformer alone, unprefixed, as BFL's FLUX files are

The transformer layouts are made by inverting diffusers' own conversions (convert_sd3_transformer_checkpoint_to_
diffusers, convert_flux_transformer_checkpoint_to_diffusers): `assert_converts_back` runs diffusers' function on
the file's tensors and requires every tensor of the folder back, bit for bit, which proves the layout. The VAE goes
through the diffusers -> LDM script of tests/fixtures/diffusers_scripts, verbatim.
"""

from __future__ import annotations

import contextlib
import io
import runpy
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tests.engine.standins import SCRIPTS

SEED = 4321
UNET = "model.diffusion_model."
TEXT = "text_encoders."
Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class DiTStandIn:
    family: str
    folder: Path
    single_file: Path  # everything in the original layout
    transformer_only: Path  # the transformer alone, unprefixed (BFL's files)


# --- the tiny pipelines ---------------------------------------------------------------------------------------


def _clip(hidden: int, act: str, projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2,
                            num_attention_heads=max(1, hidden // 64), max_position_embeddings=77, hidden_act=act,
                            projection_dim=hidden, bos_token_id=0, eos_token_id=2, pad_token_id=1)  # fmt: skip
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def _t5(d_model: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    # T5 v1.1's kind (gated GELU, 32 buckets up to 128 apart); T5Config passes the token ids on to its base class
    config = T5Config(  # type: ignore[call-arg]
        vocab_size=32128, d_model=d_model, d_kv=32, d_ff=2 * d_model, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        is_encoder_decoder=False, use_cache=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    return T5EncoderModel(config).eval()


def _vae(scaling: float, shift: float) -> Any:
    from diffusers import AutoencoderKL

    vae: Any = AutoencoderKL(block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=16,
                         scaling_factor=scaling, shift_factor=shift, use_quant_conv=False,
                         use_post_quant_conv=False)  # fmt: skip
    return vae.eval()


def build_sd3(sd35: bool = False) -> Any:
    """SD 3 medium-shaped; `sd35`: SD 3.5 medium's MMDiT-X (RMS q/k norms, a second attention in the first layer)."""
    import diffusers

    from engine.models.clip_tokenizer import clip_tokenizer
    from engine.models.t5_tokenizer import t5_tokenizer

    torch.manual_seed(SEED)
    clip_l = _clip(32, "quick_gelu", projection=True)
    with torch.no_grad():  # SD 3 uses CLIP-L's pooled output unprojected (its files hold no projection)
        clip_l.text_projection.weight.copy_(torch.eye(32))
    transformer: Any = diffusers.SD3Transformer2DModel(
        sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=2, attention_head_dim=64,
        num_attention_heads=2, joint_attention_dim=128, caption_projection_dim=128, pooled_projection_dim=32 + 64,
        pos_embed_max_size=32, qk_norm="rms_norm" if sd35 else None, dual_attention_layers=(0,) if sd35 else (),
    )  # fmt: skip
    return diffusers.StableDiffusion3Pipeline(
        transformer=transformer.eval(),
        vae=_vae(1.5305, 0.0609),
        text_encoder=clip_l,
        text_encoder_2=_clip(64, "gelu", projection=True),
        text_encoder_3=_t5(128),  # CLIP-L + CLIP-G (32 + 64) are padded up to T5's width
        tokenizer=clip_tokenizer("<|endoftext|>"),
        tokenizer_2=clip_tokenizer("!"),
        tokenizer_3=t5_tokenizer(),
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
    )


def build_flux(guidance: bool = False) -> Any:
    import diffusers

    from engine.models.clip_tokenizer import clip_tokenizer
    from engine.models.t5_tokenizer import t5_tokenizer

    torch.manual_seed(SEED + 1)
    transformer: Any = diffusers.FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=2, attention_head_dim=128,
        num_attention_heads=1, joint_attention_dim=128, pooled_projection_dim=32, guidance_embeds=guidance,
        axes_dims_rope=(16, 56, 56),
    )  # fmt: skip
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0 if guidance else 1.0, use_dynamic_shifting=guidance, base_shift=0.5,
        max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096,
    )  # fmt: skip
    return diffusers.FluxPipeline(
        transformer=transformer.eval(),
        vae=_vae(0.3611, 0.1159),
        text_encoder=_clip(32, "quick_gelu", projection=False),
        text_encoder_2=_t5(128),
        tokenizer=clip_tokenizer("<|endoftext|>"),
        tokenizer_2=t5_tokenizer(),
        scheduler=scheduler,
    )


# --- diffusers -> original: the inverse of diffusers' conversions ----------------------------------------------


def _swap_scale_shift(weight: torch.Tensor) -> torch.Tensor:
    """diffusers' AdaLayerNormContinuous splits (scale, shift), the originals (shift, scale): its own inverse."""
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _rename(state: Tensors, table: dict[str, str], prefix_from: str = "", prefix_to: str = "") -> Tensors:
    """original name -> tensor, for each (diffusers suffix -> original suffix) of `table` present in `state`."""
    return {
        prefix_to + original + suffix: state[prefix_from + name + suffix].clone()
        for name, original in table.items()
        for suffix in (".weight", ".bias")
        if prefix_from + name + suffix in state
    }


def _fuse(state: Tensors, parts: tuple[str, ...], prefix: str, to: str) -> Tensors:
    """Fused projections (q, k, v[, mlp]) concatenated along the output dimension, weights and biases."""
    return {
        f"{to}.{kind}": torch.cat([state[f"{prefix}{part}.{kind}"] for part in parts]) for kind in ("weight", "bias")
    }


_SD3_TOP = {
    "pos_embed.proj": "x_embedder.proj",
    "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
    "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
    "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
    "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
    "context_embedder": "context_embedder",
    "proj_out": "final_layer.linear",
}
_SD3_BLOCK = {  # transformer_blocks.{i}. -> joint_blocks.{i}.
    "attn.to_out.0": "x_block.attn.proj",
    "attn.to_add_out": "context_block.attn.proj",
    "attn2.to_out.0": "x_block.attn2.proj",
    "norm1.linear": "x_block.adaLN_modulation.1",
    "ff.net.0.proj": "x_block.mlp.fc1",
    "ff.net.2": "x_block.mlp.fc2",
    "ff_context.net.0.proj": "context_block.mlp.fc1",
    "ff_context.net.2": "context_block.mlp.fc2",
    "attn.norm_q": "x_block.attn.ln_q",
    "attn.norm_k": "x_block.attn.ln_k",
    "attn.norm_added_q": "context_block.attn.ln_q",
    "attn.norm_added_k": "context_block.attn.ln_k",
    "attn2.norm_q": "x_block.attn2.ln_q",
    "attn2.norm_k": "x_block.attn2.ln_k",
}


def sd3_to_original(state: Tensors, layers: int) -> Tensors:
    """SD3Transformer2DModel's state dict in Stability's MMDiT layout (without the model.diffusion_model. prefix)."""
    out = {"pos_embed": state["pos_embed.pos_embed"].clone(), **_rename(state, _SD3_TOP)}
    out["final_layer.adaLN_modulation.1.weight"] = _swap_scale_shift(state["norm_out.linear.weight"])
    out["final_layer.adaLN_modulation.1.bias"] = _swap_scale_shift(state["norm_out.linear.bias"])
    for i in range(layers):
        block, to = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        out.update(_rename(state, _SD3_BLOCK, block, to))
        out.update(_fuse(state, ("to_q", "to_k", "to_v"), block + "attn.", to + "x_block.attn.qkv"))
        out.update(
            _fuse(state, ("add_q_proj", "add_k_proj", "add_v_proj"), block + "attn.", to + "context_block.attn.qkv")
        )
        if block + "attn2.to_q.weight" in state:
            out.update(_fuse(state, ("to_q", "to_k", "to_v"), block + "attn2.", to + "x_block.attn2.qkv"))
        context = state[block + "norm1_context.linear.weight"], state[block + "norm1_context.linear.bias"]
        last = i == layers - 1  # the last block's context norm is continuous (scale, shift) in diffusers
        for kind, tensor in zip(("weight", "bias"), context, strict=True):
            out[f"{to}context_block.adaLN_modulation.1.{kind}"] = _swap_scale_shift(tensor) if last else tensor.clone()
    return out


_FLUX_TOP = {
    "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
    "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
    "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "context_embedder": "txt_in",
    "x_embedder": "img_in",
    "proj_out": "final_layer.linear",
}
_FLUX_DOUBLE = {  # transformer_blocks.{i}. -> double_blocks.{i}.
    "norm1.linear": "img_mod.lin",
    "norm1_context.linear": "txt_mod.lin",
    "ff.net.0.proj": "img_mlp.0",
    "ff.net.2": "img_mlp.2",
    "ff_context.net.0.proj": "txt_mlp.0",
    "ff_context.net.2": "txt_mlp.2",
    "attn.to_out.0": "img_attn.proj",
    "attn.to_add_out": "txt_attn.proj",
}
_FLUX_DOUBLE_NORMS = {  # RMSNorm weights: .weight -> .scale
    "attn.norm_q": "img_attn.norm.query_norm",
    "attn.norm_k": "img_attn.norm.key_norm",
    "attn.norm_added_q": "txt_attn.norm.query_norm",
    "attn.norm_added_k": "txt_attn.norm.key_norm",
}
_FLUX_SINGLE = {"norm.linear": "modulation.lin", "proj_out": "linear2"}  # single_transformer_blocks -> single_blocks
_FLUX_SINGLE_NORMS = {"attn.norm_q": "norm.query_norm", "attn.norm_k": "norm.key_norm"}


def _norms(state: Tensors, table: dict[str, str], prefix: str, to: str) -> Tensors:
    return {f"{to}{original}.scale": state[f"{prefix}{name}.weight"].clone() for name, original in table.items()}


def flux_to_original(state: Tensors, layers: int, single_layers: int) -> Tensors:
    """FluxTransformer2DModel's state dict in BFL's layout (flux1-dev.safetensors' keys)."""
    out = _rename(state, _FLUX_TOP)
    out["final_layer.adaLN_modulation.1.weight"] = _swap_scale_shift(state["norm_out.linear.weight"])
    out["final_layer.adaLN_modulation.1.bias"] = _swap_scale_shift(state["norm_out.linear.bias"])
    for i in range(layers):
        block, to = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        out.update(_rename(state, _FLUX_DOUBLE, block, to))
        out.update(_norms(state, _FLUX_DOUBLE_NORMS, block, to))
        out.update(_fuse(state, ("to_q", "to_k", "to_v"), block + "attn.", to + "img_attn.qkv"))
        out.update(_fuse(state, ("add_q_proj", "add_k_proj", "add_v_proj"), block + "attn.", to + "txt_attn.qkv"))
    for i in range(single_layers):
        block, to = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        out.update(_rename(state, _FLUX_SINGLE, block, to))
        out.update(_norms(state, _FLUX_SINGLE_NORMS, block, to))
        fused = _fuse(state, ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), block, to + "linear1")
        out.update(fused)
    return out


# --- the other components in the original layout ----------------------------------------------------------------


def _vae_to_ldm(state: Tensors) -> Tensors:
    """The VAE by the diffusers -> LDM script's own function (tests/fixtures/diffusers_scripts, verbatim)."""
    script = runpy.run_path(str(SCRIPTS / "convert_diffusers_to_original_stable_diffusion.py"), run_name="standins")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every key it renames
        converted = script["convert_vae_state_dict"](state)
    return {f"first_stage_model.{name}": tensor.clone() for name, tensor in converted.items()}


def _clip_keys(model: Any, name: str) -> Tensors:
    """A CLIP tower as SD 3's and ComfyUI's files hold it: transformers' names (text_model.…, text_projection)
    under text_encoders.NAME.transformer.; SD 3's CLIP-L is kept without its (identity) projection."""
    out = {}
    for key, tensor in model.state_dict().items():
        key = key if key.startswith(("text_model.", "text_projection")) else f"text_model.{key}"
        if name == "clip_l" and key.startswith("text_projection"):
            continue
        out[f"{TEXT}{name}.transformer.{key}"] = tensor.clone()
    return out


def _t5_keys(model: Any) -> Tensors:
    """T5's tensors under text_encoders.t5xxl.transformer. (ComfyUI's: the shared embedding once, no encoder copy)."""
    state = model.state_dict()
    return {
        f"{TEXT}t5xxl.transformer.{key}": t.clone() for key, t in state.items() if key != "encoder.embed_tokens.weight"
    }


# --- the proof: diffusers' own conversion gives the folder back -------------------------------------------------


def assert_converts_back(converter: Callable[..., Tensors], original: Tensors, expected: Tensors, what: str) -> None:
    """diffusers' conversion of the file's tensors is the folder's state dict, every tensor bit for bit."""
    converted = converter(checkpoint=dict(original))
    assert converted.keys() == expected.keys(), (
        f"{what}: {sorted(set(converted) ^ set(expected))[:5]} differ between the conversion and the folder"
    )
    changed = [key for key in expected if not torch.equal(converted[key], expected[key])]
    assert not changed, f"{what}: {changed[:5]} are not the folder's tensors"


def _transformer_layout(pipe: Any, family: str) -> Tensors:
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    from engine.models.single_file import flux_converter

    state, config = pipe.transformer.state_dict(), pipe.transformer.config
    if family == "sd3":
        original = sd3_to_original(state, config.num_layers)
        prefixed = {UNET + key: tensor for key, tensor in original.items()}
        assert_converts_back(convert_sd3_transformer_checkpoint_to_diffusers, prefixed, state, "sd3 transformer")
    else:
        original = flux_to_original(state, config.num_layers, config.num_single_layers)
        assert_converts_back(flux_converter(), original, state, "flux transformer")
    return original


def build_dit_stand_in(root: Path, family: str, variant: bool = False) -> DiTStandIn:
    """`variant`: SD 3.5 medium-shaped for "sd3", FLUX.1 dev-shaped (a guidance embedding) for "flux"."""
    from safetensors.torch import save_file

    name = {"sd3": "sd35", "flux": "flux-dev"}[family] if variant else family
    pipe = build_sd3(variant) if family == "sd3" else build_flux(variant)
    folder = root / name
    pipe.save_pretrained(str(folder))
    transformer = _transformer_layout(pipe, family)
    whole = {UNET + key: tensor for key, tensor in transformer.items()}
    whole.update(_vae_to_ldm(pipe.vae.state_dict()))
    whole.update(_clip_keys(pipe.text_encoder, "clip_l"))
    if family == "sd3":
        whole.update(_clip_keys(pipe.text_encoder_2, "clip_g"))
    whole.update(_t5_keys(pipe.text_encoder_3 if family == "sd3" else pipe.text_encoder_2))
    single, alone = root / f"{name}.safetensors", root / f"{name}-transformer.safetensors"
    save_file({key: tensor.contiguous() for key, tensor in whole.items()}, str(single))
    save_file({key: tensor.contiguous() for key, tensor in transformer.items()}, str(alone))
    return DiTStandIn(family, folder, single, alone)


# --- the same model as ComfyUI users keep it: a transformer and its parts in separate files ----------------------

# The file a part goes to (ComfyUI's folders and BFL's / comfyanonymous' file names) -> the prefix its tensors have
# in the whole file; each is written with that prefix taken off (BFL's ae.safetensors: LDM VAE keys unprefixed;
# ComfyUI's clip_l / clip_g / t5xxl files: transformers' keys, T5's shared embedding once)
COMPANION_FILES = {
    "vae/ae.safetensors": "first_stage_model.",
    "text_encoders/clip_l.safetensors": f"{TEXT}clip_l.transformer.",
    "text_encoders/clip_g.safetensors": f"{TEXT}clip_g.transformer.",
    "text_encoders/t5xxl_fp16.safetensors": f"{TEXT}t5xxl.transformer.",
}


def split_into_companions(stand_in: DiTStandIn, models: Path, skip: tuple[str, ...] = ()) -> Path:
    """A models directory as a ComfyUI user has it: the transformer alone (BFL's layout) in diffusion_models/,
    its VAE and text encoders in vae/ and text_encoders/ (those in `skip` left out); the transformer's path."""
    from safetensors.torch import load_file, save_file

    whole = load_file(str(stand_in.single_file))
    for name, prefix in COMPANION_FILES.items():
        part = {key[len(prefix) :]: tensor for key, tensor in whole.items() if key.startswith(prefix)}
        if part and name not in skip:
            (models / name).parent.mkdir(parents=True, exist_ok=True)
            save_file(part, str(models / name))
    transformer = models / "diffusion_models" / stand_in.transformer_only.name
    transformer.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(stand_in.transformer_only, transformer)
    return transformer


# --- the same files as users also have them: fp8 weights, SD 3 without T5 ----------------------------------------

# A whole file's parts by key prefix (the transformer: every other key, prefixed or not)
PART_PREFIXES = {"vae": "first_stage_model.", "clip_l": f"{TEXT}clip_l.", "clip_g": f"{TEXT}clip_g.",
                 "t5xxl": f"{TEXT}t5xxl."}  # fmt: skip


def _part_of(key: str) -> str:
    return next((part for part, prefix in PART_PREFIXES.items() if key.startswith(prefix)), "transformer")


def stored_in(stand_in: DiTStandIn, root: Path, name: str, dtypes: dict[str, torch.dtype],
              upcast: bool = False) -> DiTStandIn:  # fmt: skip
    """The stand-in's single files with each part's float tensors stored in `dtypes[part]` (part: transformer,
    vae, clip_l, clip_g, t5xxl), as fp8 releases are (flux1-dev-fp8: the transformer in float8_e4m3fn);
    `upcast`: rounded through those dtypes and stored back in float32, the weights such a file loads as on a CPU.
    The folder stays the stand-in's (full precision)."""
    from safetensors.torch import load_file, save_file

    def cast(tensor: torch.Tensor, key: str) -> torch.Tensor:
        dtype = dtypes.get(_part_of(key))
        if dtype is None or not tensor.is_floating_point():
            return tensor
        return tensor.to(dtype).to(torch.float32) if upcast else tensor.to(dtype)

    single, alone = root / f"{name}.safetensors", root / f"{name}-transformer.safetensors"
    for source, target in ((stand_in.single_file, single), (stand_in.transformer_only, alone)):
        save_file({key: cast(tensor, key).contiguous() for key, tensor in load_file(str(source)).items()}, str(target))
    return DiTStandIn(stand_in.family, stand_in.folder, single, alone)


def without_t5(stand_in: DiTStandIn, root: Path) -> DiTStandIn:
    """An SD 3 stand-in as Stability's sd3_medium_incl_clips.safetensors is (CLIP-L and CLIP-G, no T5), and its
    diffusers folder without text_encoder_3 / tokenizer_3 (null in model_index.json, as diffusers saves a
    pipeline built with text_encoder_3=None)."""
    import json

    from safetensors.torch import load_file, save_file

    folder = root / f"{stand_in.folder.name}-without-t5"
    shutil.copytree(stand_in.folder, folder)
    index = json.loads((folder / "model_index.json").read_text())
    for component in ("text_encoder_3", "tokenizer_3"):
        index[component] = [None, None]
        shutil.rmtree(folder / component)
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    single = root / f"{stand_in.single_file.stem}_incl_clips.safetensors"
    whole = load_file(str(stand_in.single_file))
    save_file({key: tensor for key, tensor in whole.items() if _part_of(key) != "t5xxl"}, str(single))
    return DiTStandIn(stand_in.family, folder, single, stand_in.transformer_only)


# ComfyUI's scaled fp8 layouts: the older (a `scaled_fp8` marker, `.scale_weight`) and the newer (`.weight_scale`,
# `.input_scale`, a `.comfy_quant` description)
FP8_MAX = 448.0  # float8_e4m3fn's largest value


def scaled_tensors(tensors: Tensors, layout: str, marker: str) -> tuple[Tensors, Tensors]:
    """`tensors` with each Linear weight (2-D, not an embedding) divided by a per-tensor scale (its absolute maximum
    over fp8's) and stored in float8_e4m3fn, the scale beside it; and the weights that stands for (fp8 x scale)."""
    import json

    scaled: Tensors = {}
    meant: Tensors = {}
    for key, tensor in tensors.items():
        base, _, leaf = key.rpartition(".")
        if leaf != "weight" or tensor.dim() != 2 or "embed" in key or "shared" in key:
            scaled[key] = meant[key] = tensor
            continue
        scale = (tensor.abs().max().float() / FP8_MAX).reshape(())
        stored = (tensor.float() / scale).to(torch.float8_e4m3fn)
        scaled[key], meant[key] = stored, stored.float() * scale
        if layout == "legacy":
            scaled[f"{base}.scale_weight"] = scale
        else:
            scaled[f"{base}.weight_scale"], scaled[f"{base}.input_scale"] = scale, torch.ones(())
            description = json.dumps({"format": "float8_e4m3fn"}).encode()
            scaled[f"{base}.comfy_quant"] = torch.tensor(list(description), dtype=torch.uint8)
    if layout == "legacy":
        scaled[f"{marker}scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return scaled, meant


def scaled_fp8(stand_in: DiTStandIn, root: Path, name: str, layout: str) -> tuple[DiTStandIn, DiTStandIn]:
    """The stand-in's files in ComfyUI's scaled fp8 layout (the transformer's and T5's Linears, as
    sd3.5_large_fp8_scaled.safetensors and t5xxl_fp8_e4m3fn_scaled.safetensors have them; the VAE and CLIPs as they
    are), and the same weights dequantised, stored in fp32: (scaled, dequantised)."""
    from safetensors.torch import load_file, save_file

    made = []
    for suffix, which in (("", 0), ("-dequantised", 1)):
        single, alone = root / f"{name}{suffix}.safetensors", root / f"{name}{suffix}-transformer.safetensors"
        whole = load_file(str(stand_in.single_file))
        out: Tensors = {}
        for part in ("transformer", "t5xxl"):  # each with its own marker, so that a split keeps one per file
            picked = {key: t for key, t in whole.items() if _part_of(key) == part}
            marker = UNET if part == "transformer" else PART_PREFIXES["t5xxl"] + "transformer."
            out.update(scaled_tensors(picked, layout, marker)[which])
        out.update({key: t for key, t in whole.items() if _part_of(key) not in ("transformer", "t5xxl")})
        save_file({key: tensor.contiguous() for key, tensor in out.items()}, str(single))
        transformer = scaled_tensors(load_file(str(stand_in.transformer_only)), layout, "")[which]
        save_file({key: tensor.contiguous() for key, tensor in transformer.items()}, str(alone))
        made.append(DiTStandIn(stand_in.family, stand_in.folder, single, alone))
    return made[0], made[1]
