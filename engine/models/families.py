"""Model families: what a Stable Diffusion family is made of, as a table (diffusers' AutoPipeline mapping
tables are the model), and how to tell a model's family from its files.

A family names, per kind of pipeline (txt2img, img2img, inpaint, instruct-pix2pix, ControlNet), the diffusers
class that runs it, and its native size, latent format, text encoders, prediction type and live-preview factors.
Operations ask the handle for a kind; a kind the family lacks is unavailable, with the reason.

Pure JSON reading, no torch: the server tells the family (and so which operations it can offer) at start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

PipelineKind = Literal["txt2img", "img2img", "inpaint", "instruct_pix2pix", "controlnet_canny"]

# Extra component folders next to a base model (engine.models.tiny writes them; any local folder may have them).
COMPONENT_FOR_KIND: dict[str, str] = {"instruct_pix2pix": "unet_pix2pix", "controlnet_canny": "controlnet_canny"}


@dataclass(frozen=True)
class ModelFamily:
    name: str
    title: str
    pipelines: MappingProxyType[str, str]  # kind -> diffusers pipeline class
    native_size: int
    preview: str  # engine.preview.LATENT_RGB_FACTORS key
    prediction_type: str = "epsilon"
    text_encoders: tuple[str, ...] = ("text_encoder",)
    latent_channels: int = 4
    scaling_factor: float = 0.18215
    safety_checker: bool = True  # the pipelines take safety_checker / requires_safety_checker arguments
    shift_factor: float | None = None  # latents = (vae latents - shift) x scaling (SD 3, FLUX)
    # The denoising network: the pipeline component's name and its diffusers class (UNet or transformer).
    denoiser: str = "unet"
    denoiser_class: str = "UNet2DConditionModel"
    size_multiple: int = 8  # sides a multiple of this: the VAE's x8, times the transformer's 2x2 patches
    # An inpainting checkpoint: its UNet also reads a mask and the masked image (9 input channels). Every kind
    # runs through its inpaint pipeline (txt2img and img2img as an inpaint of the whole frame, as A1111 does).
    masked_conditioning: bool = False
    notes: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "native_size": self.native_size,
            "prediction_type": self.prediction_type,
            "denoiser": self.denoiser_class,
            "text_encoders": list(self.text_encoders),
            "pipelines": dict(self.pipelines),
        }


SD1 = ModelFamily(
    "sd1",
    "Stable Diffusion 1.x",
    MappingProxyType(
        {
            "txt2img": "StableDiffusionPipeline",
            "img2img": "StableDiffusionImg2ImgPipeline",
            "inpaint": "StableDiffusionInpaintPipeline",
            "instruct_pix2pix": "StableDiffusionInstructPix2PixPipeline",
            "controlnet_canny": "StableDiffusionControlNetPipeline",
        }
    ),
    native_size=512,
    preview="sd1",
)
SD2 = replace(SD1, name="sd2", title="Stable Diffusion 2.x (512, epsilon)", preview="sd2")
SD2_V = replace(SD2, name="sd2-v", title="Stable Diffusion 2.x (768, v-prediction)", native_size=768,
                prediction_type="v_prediction")  # fmt: skip
SDXL = ModelFamily(
    "sdxl",
    "Stable Diffusion XL",
    MappingProxyType(
        {
            "txt2img": "StableDiffusionXLPipeline",
            "img2img": "StableDiffusionXLImg2ImgPipeline",
            "inpaint": "StableDiffusionXLInpaintPipeline",
            "instruct_pix2pix": "StableDiffusionXLInstructPix2PixPipeline",
            "controlnet_canny": "StableDiffusionXLControlNetPipeline",
        }
    ),
    native_size=1024,
    preview="sdxl",
    text_encoders=("text_encoder", "text_encoder_2"),
    scaling_factor=0.13025,
    safety_checker=False,
)

# The transformer (DiT) families: rectified flow ("flow": the network predicts the velocity from noise to
# image), 16-channel latents, no instruct-pix2pix or ControlNet entries (diffusers' SD 3 / FLUX ControlNets take
# other components than ours: not offered yet).
SD3 = ModelFamily(
    "sd3",
    "Stable Diffusion 3 / 3.5",
    MappingProxyType(
        {
            "txt2img": "StableDiffusion3Pipeline",
            "img2img": "StableDiffusion3Img2ImgPipeline",
            "inpaint": "StableDiffusion3InpaintPipeline",
        }
    ),
    native_size=1024,
    preview="sd3",
    prediction_type="flow",
    text_encoders=("text_encoder", "text_encoder_2", "text_encoder_3"),
    latent_channels=16,
    scaling_factor=1.5305,
    shift_factor=0.0609,
    safety_checker=False,
    denoiser="transformer",
    denoiser_class="SD3Transformer2DModel",
    size_multiple=16,
)
FLUX = replace(
    SD3,
    name="flux",
    title="FLUX.1",
    pipelines=MappingProxyType(
        {"txt2img": "FluxPipeline", "img2img": "FluxImg2ImgPipeline", "inpaint": "FluxInpaintPipeline"}
    ),
    preview="flux",
    text_encoders=("text_encoder", "text_encoder_2"),
    scaling_factor=0.3611,
    shift_factor=0.1159,
    denoiser_class="FluxTransformer2DModel",
)


def inpainting_variant(family: ModelFamily) -> ModelFamily:
    """The family's inpainting checkpoints (sd-v1-5-inpainting, sd-xl-1.0-inpainting, ...): a 9-channel UNet, run
    by the inpaint pipeline for txt2img, img2img and inpaint alike."""
    inpaint = family.pipelines["inpaint"]
    return replace(
        family,
        name=f"{family.name}-inpaint",
        title=f"{family.title} inpainting",
        pipelines=MappingProxyType(dict.fromkeys(("txt2img", "img2img", "inpaint"), inpaint)),
        masked_conditioning=True,
    )


INPAINTING: dict[str, ModelFamily] = {f.name: inpainting_variant(f) for f in (SD1, SD2, SDXL)}
FAMILIES: dict[str, ModelFamily] = {
    family.name: family for family in (SD1, SD2, SD2_V, SDXL, SD3, FLUX, *INPAINTING.values())
}
BUILTIN_FAMILIES: dict[str, ModelFamily] = {"tiny": SD1, "tiny-sdxl": SDXL, "tiny-sd3": SD3, "tiny-flux": FLUX}


class UnknownFamily(ValueError):
    pass


def family_named(name: str) -> ModelFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamily(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})") from None


def detect_folder(path: Path) -> ModelFamily:
    """The family of a diffusers pipeline folder, from its model_index.json and component configs."""
    try:
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError) as exc:
        raise UnknownFamily(f"{path} is not a diffusers pipeline folder (model_index.json: {exc})") from None
    class_name = str(index.get("_class_name", ""))
    # A transformer family by its pipeline class, or by its denoiser's class (an index naming another pipeline
    # class, e.g. a community one, over the same components). Before the SDXL test: they have text_encoder_2 too.
    for family in FAMILIES.values():
        if family.denoiser == "unet":
            continue
        entry = index.get(family.denoiser)
        denoiser_class = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
        denoiser_class = denoiser_class or _config(path / family.denoiser / "config.json").get("_class_name")
        if class_name in family.pipelines.values() or denoiser_class == family.denoiser_class:
            return family
    unet = _config(path / "unet" / "config.json")
    if "XL" in class_name or "text_encoder_2" in index or unet.get("addition_embed_type") == "text_time":
        return _with_unet(SDXL, unet)
    if class_name and not class_name.startswith("StableDiffusion"):
        raise UnknownFamily(f"{path} holds a {class_name}, not a Stable Diffusion 1.x/2.x/XL/3 or FLUX.1 pipeline")
    if unet.get("cross_attention_dim") == 1024:
        scheduler = _config(path / "scheduler" / "scheduler_config.json")
        family = SD2_V if scheduler.get("prediction_type") == "v_prediction" else SD2
    else:
        family = SD1
    return _with_unet(family, unet)


def _with_unet(family: ModelFamily, unet: dict[str, object]) -> ModelFamily:
    """An inpainting checkpoint (a 9-channel UNet: latents + mask + masked image) is its family's variant."""
    if unet.get("in_channels") == 9 and family.name in INPAINTING:
        return INPAINTING[family.name]
    if unet.get("in_channels") == 9 and family.name == "sd2-v":
        return INPAINTING["sd2"]  # SD 2 inpainting is an epsilon model
    return family


def _config(path: Path) -> dict[str, object]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def capabilities(family: ModelFamily, folder: Path | None) -> dict[str, str | None]:
    """Kind -> None when the model can run it, else why not (the family lacks it, or a component is missing)."""
    found: dict[str, str | None] = {}
    for kind in ("txt2img", "img2img", "inpaint", "instruct_pix2pix", "controlnet_canny"):
        if kind not in family.pipelines:
            found[kind] = f"{family.title} has no {kind} pipeline"
            continue
        component = COMPONENT_FOR_KIND.get(kind)
        if component is not None and folder is not None and not (folder / component / "config.json").exists():
            found[kind] = (
                f"the model has no {component} component (add a {component}/ folder next to it, or point "
                f"ModelOptions.extras[{component!r}] at one)"
            )
            continue
        found[kind] = None
    return found


# Which extra components the built-in models carry (engine.models.tiny builds them).
BUILTIN_COMPONENTS: dict[str, frozenset[str]] = {
    "tiny": frozenset({"unet_pix2pix", "controlnet_canny", "unet_inpaint"}),
    "tiny-sdxl": frozenset(),
    "tiny-sd3": frozenset(),
    "tiny-flux": frozenset(),
}


def model_capabilities(spec_text: str, family_override: str | None = None) -> tuple[ModelFamily | None, dict]:
    """The family of a model spec and what it can run, told from files alone (no torch, no network): a
    built-in's table, a diffusers folder's configs, a hub id's cached configs. (None, {}) when it cannot be told
    (a single file, a hub id not cached): the render finds out, and says why."""
    from engine.models.spec import parse_model_spec

    spec = parse_model_spec(spec_text)
    if spec.kind == "builtin":
        family = family_named(family_override) if family_override else BUILTIN_FAMILIES[spec.location]
        present = BUILTIN_COMPONENTS[spec.location]
        found = capabilities(family, None)
        for kind, component in COMPONENT_FOR_KIND.items():
            if found.get(kind) is None and component not in present:
                found[kind] = f"builtin:{spec.location} has no {component} component"
        return family, found
    folder: Path | None = None
    headed = spec.location.lower().endswith((".safetensors", ".sft"))  # a header to read (.sft: early FLUX files)
    if spec.kind == "single_file" and headed and not family_override:
        from engine.models.checkpoint import NotACheckpoint, inspect_checkpoint

        try:  # only the header is read; a .ckpt would need torch, so it is told when it loads
            info = inspect_checkpoint(Path(spec.location))
        except (NotACheckpoint, OSError):
            return None, {}
        return (info.family, capabilities(info.family, None)) if info.family else (None, {})
    if spec.kind == "folder":
        folder = Path(spec.location)
    elif spec.kind == "hub":
        folder = _cached_hub_folder(spec.location)
    if folder is None:
        return (family_named(family_override) if family_override else None), {}
    try:
        family = family_named(family_override) if family_override else detect_folder(folder)
    except UnknownFamily:
        return None, {}
    return family, capabilities(family, folder)


def availability(spec_text: str) -> str | None:
    """Why the model cannot be used on this machine, told without the network (None: it can, or it will be
    found out when it loads): a missing file or folder, a hub id that is not cached while the hub is off."""
    import os

    from engine.models.spec import parse_model_spec

    spec = parse_model_spec(spec_text)
    if spec.kind in ("folder", "single_file") and not Path(spec.location).exists():
        return f"model {spec} not found: no such file or folder on the server"
    if spec.kind == "hub" and _cached_hub_folder(spec.location) is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        if offline:
            return (
                f"model {spec} is not cached on this machine and HF_HUB_OFFLINE is set: run once online, or point "
                "--model at a folder or a file"
            )
        return f"model {spec} is not cached on this machine: the first render downloads it (several GB)"
    return None


def _cached_hub_folder(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, "model_index.json")
    return Path(found).parent if isinstance(found, str) else None
