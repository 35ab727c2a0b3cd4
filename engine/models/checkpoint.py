"""What a single model file is, from its keys alone: a Stable Diffusion checkpoint of which family, or
something else (a LoRA, a VAE, a ControlNet, a text encoder), or not a model at all.

Only the names of the tensors are read (safetensors' header; a `.ckpt` is opened with `weights_only=True`, which
refuses pickled code), so telling a file apart costs milliseconds and runs nothing from it. The key layouts are
those of the original (CompVis / Stability / A1111 / ComfyUI) checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from engine.models.families import FLUX, INPAINTING, SD1, SD2, SD2_V, SD3, SDXL, ModelFamily

UNET = "model.diffusion_model."
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")  # .sft: early FLUX files (BFL's first ae.sft, flux1-dev.sft)
# The transformer (DiT) families by a key of their first block, in the original layouts: Stability's and ComfyUI's
# (under model.diffusion_model.) and BFL's (the transformer alone, no prefix); diffusers' CHECKPOINT_KEY_NAMES.
DIT_MARKERS: dict[str, ModelFamily] = {
    "joint_blocks.0.context_block.adaLN_modulation.1.bias": SD3,
    "double_blocks.0.img_attn.norm.key_norm.scale": FLUX,
}
# FLUX.1's transformer reads 16 latent channels packed 2 x 2; Fill (384) and Depth (128) take more, FLUX.2 and
# Chroma are other architectures: none of them is the FLUX.1 family the pipelines run.
FLUX_IN_CHANNELS = 64
# kohya / A1111 (lora_down), diffusers (lora.down), PEFT (lora_A)
LORA_MARKERS = (".lora_down.", ".lora_up.", ".lora.down.", ".lora.up.", ".lora_A.", ".lora_B.")


@dataclass(frozen=True)
class CheckpointInfo:
    kind: str  # "checkpoint", "lora", "vae", "controlnet", "text_encoder", "unknown"
    family: ModelFamily | None
    keys: int
    detail: str = ""  # what makes it unknown, when something does

    @property
    def what(self) -> str:
        if self.kind == "checkpoint" and self.family is not None:
            return f"a {self.family.title} checkpoint"
        return {
            "lora": "a LoRA (an adapter to apply on a model, not a model)",
            "vae": "a VAE on its own (not a whole model)",
            "controlnet": "a ControlNet (a companion model, not a base model)",
            "text_encoder": "a text encoder on its own (not a whole model)",
        }.get(self.kind, f"not a Stable Diffusion checkpoint this server knows{self.detail and f' ({self.detail})'}")


class NotACheckpoint(ValueError):
    """The file cannot be read as a model file at all (truncated, damaged, not a state dict)."""


def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a .safetensors or .ckpt/.pt/.bin file, without loading the tensors."""
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
        except Exception as exc:
            raise NotACheckpoint(f"{path.name} is not a readable .safetensors file ({exc})") from None
    import torch

    try:
        loaded = torch.load(str(path), map_location="meta", weights_only=True, mmap=False)
    except Exception as exc:
        raise NotACheckpoint(
            f"{path.name} cannot be read as a checkpoint with weights_only=True (truncated, damaged, or it holds "
            f"pickled code, which is never run): {str(exc)[:200]}"
        ) from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise NotACheckpoint(f"{path.name} holds a {type(loaded).__name__}, not a state dict of tensors")
    return {name: tuple(getattr(value, "shape", ())) for name, value in state.items()}


# safetensors' dtype names -> (bytes per element, whether it is a float weight). Float weights load in the render
# dtype whatever they are stored in: an fp8 file (float8_e4m3fn / e5m2, as ComfyUI's and Kijai's fp8 files are)
# takes 2x its size in fp16/bf16 and 4x in fp32 once loaded.
SAFETENSORS_DTYPES: dict[str, tuple[int, bool]] = {
    "F64": (8, True), "F32": (4, True), "F16": (2, True), "BF16": (2, True), "F8_E4M3": (1, True),
    "F8_E5M2": (1, True), "I64": (8, False), "I32": (4, False), "I16": (2, False), "I8": (1, False),
    "U8": (1, False), "BOOL": (1, False),
}  # fmt: skip


def read_dtypes(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (safetensors dtype name, shape) of a .safetensors file, from its header alone."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118
            return {name: (part.get_dtype(), tuple(part.get_shape())) for name, part in slices.items()}
    except Exception as exc:
        raise NotACheckpoint(f"{path.name} is not a readable .safetensors file ({exc})") from None


def loaded_bytes(path: Path, float_bytes: int) -> int:
    """What a .safetensors file's tensors hold once loaded with float weights of `float_bytes` bytes (fp32: 4,
    fp16 / bf16: 2), from its header: the file's own size misjudges an fp8 or fp16 file loaded in another dtype."""
    total = 0
    for dtype, shape in read_dtypes(path).values():
        size, is_float = SAFETENSORS_DTYPES.get(dtype, (1, False))
        total += math.prod(shape) * (float_bytes if is_float else size)
    return total


def read_tensor_std(path: Path, name: str) -> float | None:
    """The standard deviation of one tensor of the file (None if it has none by that name). safetensors reads
    just that tensor, with numpy: no torch at server start."""
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as handle:
                return float(handle.get_tensor(name).astype("float64").std()) if name in handle.keys() else None  # noqa: SIM118
        except (TypeError, ValueError, AttributeError):  # bfloat16 and fp8 have no numpy type: torch reads them
            pass
    import torch

    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            tensor = handle.get_tensor(name) if name in handle.keys() else None  # noqa: SIM118
    else:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        tensor = loaded.get("state_dict", loaded).get(name)
    return None if tensor is None else float(tensor.double().std(unbiased=False))


# SD 2.x v-prediction cannot be told from the names or shapes: ComfyUI's test (supported_models.SD20.model_type)
# reads how spread this LayerNorm's bias is, which training for v-prediction widens; inpainting models are never v.
V_PREDICTION_PROBE = UNET + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
V_PREDICTION_STD = 0.09


def classify(shapes: Mapping[str, tuple[int, ...]] | Iterable[str]) -> CheckpointInfo:
    names = list(shapes)
    present = set(names)
    sizes: Mapping[str, tuple[int, ...]] = shapes if isinstance(shapes, Mapping) else {}

    def has(prefix: str) -> bool:
        return any(name.startswith(prefix) for name in names)

    dit = _dit_family(sizes or dict.fromkeys(names, ()))
    if dit is not None:
        return dit if isinstance(dit, CheckpointInfo) else CheckpointInfo("checkpoint", dit, len(names))
    if has(UNET):
        if has("conditioner.embedders.1.model.") or has("conditioner.embedders.1."):
            family: ModelFamily | None = SDXL
        elif has("cond_stage_model.model.transformer.") or has("cond_stage_model.model.ln_final"):
            family = SD2  # OpenCLIP text encoder; v-prediction is told from a tensor's values (inspect_checkpoint)
        elif has("cond_stage_model.transformer."):
            family = SD1
        else:
            family = None
        conv_in = sizes.get(UNET + "input_blocks.0.0.weight", ())
        in_channels = conv_in[1] if len(conv_in) > 1 else 4
        if family is not None and in_channels == 9:  # latents + mask + masked image
            family = INPAINTING[family.name]
        elif family is not None and in_channels != 4:
            return CheckpointInfo("unknown", None, len(names), f"a UNet with {in_channels} input channels")
        return CheckpointInfo("checkpoint" if family else "unknown", family, len(names))
    if any(marker in name for name in names for marker in LORA_MARKERS):
        return CheckpointInfo("lora", None, len(names))
    if has("control_model.") or "controlnet_cond_embedding.conv_in.weight" in present:
        return CheckpointInfo("controlnet", None, len(names))
    if (has("encoder.") and has("decoder.")) or has("first_stage_model."):
        return CheckpointInfo("vae", None, len(names))
    if has("text_model.") or has("transformer.resblocks."):
        return CheckpointInfo("text_encoder", None, len(names))
    return CheckpointInfo("unknown", None, len(names))


def _dit_family(shapes: Mapping[str, tuple[int, ...]]) -> ModelFamily | CheckpointInfo | None:
    """SD 3 / FLUX.1 by their blocks' keys (with or without model.diffusion_model.); a FLUX-shaped transformer of
    another kind (Fill, Depth, FLUX.2, Chroma) as unknown, saying which."""
    for marker, family in DIT_MARKERS.items():
        prefix = next((p for p in (UNET, "") if p + marker in shapes), None)
        if prefix is None:
            continue
        img_in = shapes.get(prefix + "img_in.weight", ())
        if family is FLUX and (prefix + "vector_in.in_layer.weight" not in shapes or
                               (len(img_in) == 2 and img_in[1] != FLUX_IN_CHANNELS)):  # fmt: skip
            detail = (
                f"a FLUX transformer with {img_in[1]} input channels" if len(img_in) == 2 else "a FLUX-like transformer"
            )
            return CheckpointInfo("unknown", None, len(shapes), f"{detail}: not FLUX.1 dev/schnell")
        return family
    return None


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    shapes = read_shapes(path)
    info = classify(shapes)
    if info.family is not SD2:
        return info
    if "v_pred" in shapes or (read_tensor_std(path, V_PREDICTION_PROBE) or 0.0) > V_PREDICTION_STD:
        return replace(info, family=SD2_V)
    return info
