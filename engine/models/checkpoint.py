"""What a single model file is, from its keys alone: a Stable Diffusion checkpoint of which family, or
something else (a LoRA, a VAE, a ControlNet, a text encoder), or not a model at all.

Only the names of the tensors are read (safetensors' header; a `.ckpt` is opened with `weights_only=True`, which
refuses pickled code), so telling a file apart costs milliseconds and runs nothing from it. The key layouts are
those of the original (CompVis / Stability / A1111 / ComfyUI) checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.models.families import SD1, SD2, SDXL, ModelFamily

UNET = "model.diffusion_model."


@dataclass(frozen=True)
class CheckpointInfo:
    kind: str  # "checkpoint", "lora", "vae", "controlnet", "text_encoder", "unknown"
    family: ModelFamily | None
    keys: int

    @property
    def what(self) -> str:
        if self.kind == "checkpoint" and self.family is not None:
            return f"a {self.family.title} checkpoint"
        return {
            "lora": "a LoRA (an adapter to apply on a model, not a model)",
            "vae": "a VAE on its own (not a whole model)",
            "controlnet": "a ControlNet (a companion model, not a base model)",
            "text_encoder": "a text encoder on its own (not a whole model)",
        }.get(self.kind, "not a Stable Diffusion checkpoint this server knows")


class NotACheckpoint(ValueError):
    """The file cannot be read as a model file at all (truncated, damaged, not a state dict)."""


def read_keys(path: Path) -> list[str]:
    """The tensor names of a .safetensors or .ckpt/.pt/.bin file, without loading the tensors."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return list(handle.keys())
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
    return list(state)


def classify(keys: Iterable[str]) -> CheckpointInfo:
    names = list(keys)
    present = set(names)

    def has(prefix: str) -> bool:
        return any(name.startswith(prefix) for name in names)

    if has(UNET):
        if has("conditioner.embedders.1.model.") or has("conditioner.embedders.1."):
            family: ModelFamily | None = SDXL
        elif has("cond_stage_model.model.transformer.") or has("cond_stage_model.model.ln_final"):
            family = SD2  # OpenCLIP text encoder; v-prediction cannot be told from the keys (--model-family)
        elif has("cond_stage_model.transformer."):
            family = SD1
        else:
            family = None
        return CheckpointInfo("checkpoint" if family else "unknown", family, len(names))
    if any(".lora_down." in name or ".lora_up." in name or ".lora_A." in name for name in names):
        return CheckpointInfo("lora", None, len(names))
    if has("control_model.") or "controlnet_cond_embedding.conv_in.weight" in present:
        return CheckpointInfo("controlnet", None, len(names))
    if (has("encoder.") and has("decoder.")) or has("first_stage_model."):
        return CheckpointInfo("vae", None, len(names))
    if has("text_model.") or has("transformer.resblocks."):
        return CheckpointInfo("text_encoder", None, len(names))
    return CheckpointInfo("unknown", None, len(names))


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    return classify(read_keys(path))
