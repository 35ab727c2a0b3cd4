"""Loading models once and handing out pipelines that share their components.

A `ModelHandle` loads the base StableDiffusionPipeline on first use and keeps its modules; every pipeline an
operation asks for (img2img, inpaint, controlnet, ...) is a thin wrapper around those same modules, built per
render with a fresh scheduler (building one costs well under a millisecond; loading weights is never
repeated). Extra components live next to the base model in the folder layout written by
engine.models.tiny:

    unet_inpaint/      a 9-channel inpainting UNet. Without it inpainting falls back to the base UNet with
                       diffusers' latent-blending path (StableDiffusionInpaintPipeline with a 4-channel UNet),
                       which works with any SD 1.x/2.x model but blends less cleanly at the mask edge.
    unet_pix2pix/      an 8-channel instruct-pix2pix UNet. No fallback: instruct_pix2pix is unavailable.
    controlnet_canny/  a ControlNet for Canny edges. No fallback: controlnet_canny is unavailable.

`ModelOptions.extras` points any of them elsewhere, e.g. {"controlnet_canny": "lllyasviel/sd-controlnet-canny",
"unet_inpaint": "runwayml/stable-diffusion-inpainting"} (a pipeline folder/repo: its `unet` subfolder is used).

Companions by configuration: a model library (engine.models.library, `ModelManager.library`) names a base model's
inpainting checkpoint, instruct-pix2pix model, Canny ControlNet and VAE (models.toml); those, checked against the
base's family when the library is scanned, come before the folders next to the model (`ModelOptions.extras`
still comes first). A single-file companion checkpoint lends its UNet; the rest of it is not kept. Their hashes
enter the fingerprint. Any other ControlNet is loaded by name for the generic `controlnet` operation
(`controlnet_pipeline`), the most recently used CONTROLNET_CACHE of them kept.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from engine.errors import CapabilityMissing, EngineError, ModelUnavailable
from engine.models import tiny
from engine.models.families import BUILTIN_FAMILIES, COMPONENT_FOR_KIND, ModelFamily, detect_folder, family_named
from engine.models.fingerprint import HashCache, default_hash_cache, hash_model_path
from engine.models.libs import diffusers_quiet, dtype_kwarg
from engine.models.progress import LoadProgress
from engine.models.spec import ModelSpec, parse_model_spec
from engine.schedulers import make_scheduler

if TYPE_CHECKING:
    from engine.context import RunContext
    from engine.models.library import ModelLibrary

PipelineKind = Literal["txt2img", "img2img", "inpaint", "instruct_pix2pix", "controlnet_canny", "controlnet"]
CPU_ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
EXTRA_COMPONENTS = (tiny.INPAINT_UNET, tiny.PIX2PIX_UNET, tiny.CONTROLNET_CANNY)
CONTROLNET_CACHE = 2  # ControlNets kept loaded per model for the generic `controlnet` operation
# The parts of an SD 3 / FLUX model that a transformer-only file lacks and models.toml may name (a VAE file there
# is the model's VAE part, not a replacement of its own)
TRANSFORMER_PARTS = ("vae", "clip_l", "clip_g", "t5xxl")


def default_models_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opendream" / "models"


def select_device(preferred: str | None = None) -> torch.device:
    """CUDA > MPS > CPU, unless `preferred` (or OPENDREAM_DEVICE) names one."""
    preferred = preferred or os.environ.get("OPENDREAM_DEVICE") or None
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def select_dtype(device: torch.device, preferred: str | None = None) -> torch.dtype:
    if preferred:
        dtype = getattr(torch, preferred, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {preferred!r}")
        return dtype
    # Half precision halves memory and doubles speed on CUDA; on CPU it is slow, on MPS fp16 VAEs produce NaNs.
    return torch.float16 if device.type == "cuda" else torch.float32


@dataclass(frozen=True)
class ModelOptions:
    device: str | None = None  # "cuda", "cuda:1", "mps", "cpu"; None picks the best available
    dtype: str | None = None  # "float16", "bfloat16", "float32"; None: float16 on CUDA, float32 elsewhere
    attention_slicing: bool = False  # less memory, slightly slower, slightly different pixels
    vae_tiling: bool = False  # decode large images in tiles (less memory; seams are blended)
    models_dir: Path | None = None  # where built-in models are built; default ~/.cache/opendream/models
    hash_cache: Path | None = None  # default ~/.cache/opendream/weight-hashes.json
    extras: Mapping[str, str] = field(default_factory=dict)  # component name -> folder or hub id
    taesd: str | None = None  # live previews through TAESD: "builtin:tiny-taesd", a folder or a hub id
    family: str | None = None  # engine.models.families name; None: told from the model's files
    # A model that could not be found is not looked for again (network, disk) for this long.
    resolve_retry_s: float = 30.0
    # Loaded models are kept (least recently used evicted first) within this many bytes; None: 80 % of the
    # GPU's memory, or half the machine's RAM on a CPU.
    memory_budget: int | None = None


class ModelHandle:
    """One model, loaded lazily and exactly once; pipelines for every operation share its modules.

    Rendering is serialized through `lock`: diffusion on one device does not get faster by running two at
    once, and serializing keeps memory predictable.
    """

    def __init__(
        self, spec: str | ModelSpec, options: ModelOptions | None = None, progress: LoadProgress | None = None
    ) -> None:
        self.spec = parse_model_spec(spec)
        # How far loading has come (the server's /api/health reads it from another thread).
        self.progress = progress or LoadProgress(str(self.spec))
        self._load_failure: tuple[float, str] | None = None  # (when, why) the last load failed
        self.options = options or ModelOptions()
        self.device = select_device(self.options.device)
        self.dtype = select_dtype(self.device, self.options.dtype)
        self.lock = threading.RLock()
        self._load_lock = threading.Lock()
        self._path_lock = threading.Lock()
        self._base: Any = None
        self._path: Path | None = None
        self._extras: dict[str, Any] = {}
        self._model_hash: str | None = None
        self._warm = False
        self._taesd: Any = None
        self._unresolvable: tuple[float, str] | None = None  # (when, why) the last lookup failed
        self._watching: RunContext | None = None  # the render using the modules now (cancellation, stages)
        self._family: ModelFamily | None = None
        self._derived: Any = None  # a single file's configs, read from its tensor shapes (engine.models.single_file)
        # The model library naming this model's companions and the ControlNets (ModelManager sets it); None: only
        # ModelOptions.extras and the folders next to the model, and ControlNets named by path.
        self.library: ModelLibrary | None = None
        self._extra_from: dict[str, Any] = {}  # component -> the source it was loaded from
        self._controlnets: OrderedDict[str, Any] = OrderedDict()  # location -> ControlNetModel, most recent last
        self._hashes: dict[str, str] = {}  # a companion's or ControlNet's location -> content hash

    # --- what it is ------------------------------------------------------------------------------------

    @property
    def family(self) -> ModelFamily:
        """The model's family (engine.models.families): the options' override, a built-in's, or told from its
        files (a single file is taken as SD 1.x until its keys are read: not yet)."""
        if self._family is None:
            if self.options.family:
                self._family = family_named(self.options.family)
            elif self.spec.kind == "builtin":
                self._family = BUILTIN_FAMILIES[self.spec.location]
            elif self.spec.kind == "single_file":
                self._family = self._checkpoint_family()
            else:
                self._family = detect_folder(self._resolve_path())
        return self._family

    def _checkpoint_family(self) -> ModelFamily:
        """A single file's family, from its keys; a file that is no checkpoint is refused saying what it is."""
        from engine.models.checkpoint import NotACheckpoint, inspect_checkpoint

        path = self._resolve_path()
        try:
            info = inspect_checkpoint(path)
        except NotACheckpoint as exc:
            raise ModelUnavailable(str(exc)) from None
        if info.family is None:
            raise ModelUnavailable(
                f"{path.name} is {info.what}: point --model at a Stable Diffusion checkpoint (SD 1.x, 2.x or XL), "
                "a diffusers folder or a hub id"
            )
        return info.family

    @property
    def preview_family(self) -> str:
        """Which latent -> RGB factors fit this model (engine.preview)."""
        return self.family.preview

    # --- loading ---------------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._base is not None

    def load(self) -> ModelHandle:
        """Load the base model (once) and warm it up (once), telling `progress` how far it is. A failed load
        is not tried again for `resolve_retry_s`: the renders meanwhile fail at once, with the reason."""
        if self._warm:
            return self
        with self.lock:
            if self._warm:
                return self
            failed = self._load_failure
            if failed is not None and time.monotonic() - failed[0] < self.options.resolve_retry_s:
                raise ModelUnavailable(failed[1])
            if self.progress.state != "loading":  # the server may have begun it (importing torch)
                self.progress.begin("loading")
            try:
                if self._base is None:  # a built-in is built here on first use, a hub model looked up
                    self.progress.note("finding the model's files")
                self._ensure_base()
                self.progress.note("warming up")
                self._warm_up()
            except Exception as exc:
                engine_error = isinstance(exc, EngineError)
                reason = str(exc) if engine_error else (
                    f"model {self.spec} could not be loaded ({type(exc).__name__}: {str(exc)[:300]})"
                )  # fmt: skip
                self._load_failure = (time.monotonic(), reason)
                self.progress.failed(reason)
                if engine_error:
                    raise
                raise ModelUnavailable(reason) from exc
            self._warm = True
            self._load_failure = None
            self.progress.ready()
        return self

    def unload(self) -> None:
        """Drop the loaded modules (the LRU evicts this model); the next render loads it again."""
        with self.lock, self._load_lock:
            self._base, self._extras, self._warm, self._taesd = None, {}, False, None
            self._extra_from, self._controlnets = {}, OrderedDict()
        import gc

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def parts_changed(self) -> bool:
        """Whether a loaded transformer-only file would now load with other part files (a T5 put in
        text_encoders/ for an SD 3 that ran without one, a VAE replaced), read from the headers alone."""
        if not self.loaded or self.spec.kind != "single_file" or self._derived is None:
            return False
        from engine.models.single_file import file_configs

        try:
            now = file_configs(self._resolve_path(), self.family, self._named_parts())
        except Exception:  # it cannot be loaded as it is now: its next load says why
            return True
        return (now.companions, now.without) != (self._derived.companions, self._derived.without)

    def memory_bytes(self) -> int:
        """What the loaded modules hold (parameters and buffers); an estimate from the files before loading."""
        if self._base is None:
            return self.estimated_bytes()
        modules = [m for m in self._base.components.values() if isinstance(m, torch.nn.Module)]
        modules += [m for m in self._extras.values() if isinstance(m, torch.nn.Module)]
        modules += list(self._controlnets.values())
        seen: set[int] = set()
        total = 0
        for module in modules:
            for tensor in (*module.parameters(), *module.buffers()):
                if id(tensor) not in seen:
                    seen.add(id(tensor))
                    total += tensor.numel() * tensor.element_size()
        return total

    def estimated_bytes(self) -> int:
        """What the weight files will hold once loaded in the render dtype (the model's files and a
        transformer-only file's parts)."""
        try:
            path = self._resolve_path()
        except ModelUnavailable:
            return 0
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.suffix in (".safetensors", ".bin")]
        files += self._part_files(path)
        return sum(self._loaded_bytes(file) for file in files)

    def _loaded_bytes(self, file: Path) -> int:
        """A .safetensors file's tensors at the render dtype, from its header (an fp8 file takes 2x its size in
        fp16 / bf16, 4x in fp32); another file by its size (an fp16 one loads as fp32 on a CPU)."""
        from engine.models.checkpoint import SAFETENSORS_SUFFIXES, NotACheckpoint, loaded_bytes

        if file.suffix.lower() in SAFETENSORS_SUFFIXES:
            with contextlib.suppress(NotACheckpoint):
                return loaded_bytes(file, self.dtype.itemsize)
        size = file.stat().st_size
        return size * 2 if self.dtype == torch.float32 and "fp16" in file.name else size

    @contextlib.contextmanager
    def adapters(self, loras: list[LoraUse]) -> Iterator[None]:
        """The LoRAs applied to the base modules for one render (diffusers' adapter API over PEFT), and removed
        after it, so one layer's LoRA never reaches the next: the base modules are restored as they were."""
        if not loras:
            yield
            return
        base = self._ensure_base()
        names: list[str] = []
        try:
            for index, lora in enumerate(loras):
                check_lora_fits(lora, getattr(base, self.family.denoiser))
                adapter = f"opendream_{index}"
                base.load_lora_weights(str(lora.path), adapter_name=adapter)
                names.append(adapter)
            base.set_adapters(names, adapter_weights=[lora.weight for lora in loras])
            yield
        finally:
            if names:
                base.unload_lora_weights()

    @contextlib.contextmanager
    def embeddings(self, uses: list[EmbeddingUse]) -> Iterator[None]:
        """Textual-inversion embeddings (A1111's .pt / .safetensors, diffusers' own, SDXL's clip_l + clip_g) added
        to the tokenizers and text encoders for one render, as the tokens their prompts name, and taken out
        after it: the vocabulary and the embedding table are left as they were."""
        if not uses:
            yield
            return
        base = self._ensure_base()
        encoders = [(getattr(base, name), getattr(base, name.replace("text_encoder", "tokenizer")))
                    for name in self.family.text_encoders if name in ("text_encoder", "text_encoder_2")]  # fmt: skip
        added: list[tuple[str, Any, Any]] = []
        try:
            for use in uses:
                vectors = read_embedding(use.path)
                parts = [vectors["clip_l"], vectors["clip_g"]] if "clip_g" in vectors else [vectors["*"]]
                if len(parts) != len(encoders):
                    raise CapabilityMissing(
                        f"embedding {use.name!r} is for {len(parts)} text encoder(s); this model has {len(encoders)}"
                    )
                for vector, (encoder, tokenizer) in zip(parts, encoders, strict=True):
                    width = encoder.get_input_embeddings().weight.shape[1]
                    if vector.shape[-1] != width:
                        raise CapabilityMissing(
                            f"embedding {use.name!r} is {vector.shape[-1]} wide; this model's text encoder is {width} "
                            "wide: it was made for another family"
                        )
                    base.load_textual_inversion(
                        vector.to(encoder.dtype), token=use.token, text_encoder=encoder, tokenizer=tokenizer
                    )
                    added.append((use.token, encoder, tokenizer))
            yield
        finally:
            for token, encoder, tokenizer in reversed(added):
                base.unload_textual_inversion(tokens=token, tokenizer=tokenizer, text_encoder=encoder)

    def _warm_up(self) -> None:
        # The first pipeline call pays one-off lazy imports and kernel setup: ~0.8 s on CPU, even for a
        # 256 px render. A 1-step call at the smallest size pays it for ~20 ms, before anyone is waiting.
        pipe = self.pipeline("txt2img")
        size = 8 * pipe.vae_scale_factor
        generator = torch.Generator("cpu").manual_seed(0)  # leave the global RNG alone
        with torch.inference_mode():
            pipe(
                **call_arguments(
                    pipe,
                    prompt="",
                    width=size,
                    height=size,
                    num_inference_steps=1,
                    guidance_scale=0.0,
                    output_type="latent",
                    generator=generator,
                )
            )

    def _ensure_base(self) -> Any:
        if self._base is None:
            with self._load_lock:
                if self._base is None:
                    self._base = self._load_base()
        return self._base

    def _from_pretrained_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            dtype_kwarg(): self.dtype,
            # without `accelerate` installed diffusers cannot do the low-memory path and says so loudly
            "low_cpu_mem_usage": False,
        }
        if self.family.safety_checker:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        return kwargs

    def _load_folder(self, cls: Any, path: Path) -> Any:
        """A diffusers folder, one component at a time (model_index.json lists them), so that `progress` can
        count them; diffusers then builds the pipeline from those parts and its own config entries."""
        import json

        kwargs = self._from_pretrained_kwargs()
        try:
            index = json.loads((path / "model_index.json").read_text())
        except (OSError, ValueError):
            index = {}
        names = [
            name
            for name, entry in index.items()
            if not name.startswith("_") and isinstance(entry, list) and len(entry) == 2 and all(entry)
            and name not in kwargs  # safety_checker=None: not loaded at all
        ]  # fmt: skip
        self.progress.start(len(names))
        # A component saved as null (SD 3 saved without T5: text_encoder_3=None) is passed as None, as diffusers
        # wants it said; otherwise from_pretrained refuses the folder for lacking it
        parts: dict[str, Any] = {name: None for name, entry in index.items()
                                 if entry == [None, None] and name not in kwargs}  # fmt: skip
        for name in names:
            library, class_name = index[name]
            part = self._load_component(path, name, str(library), str(class_name))
            if part is not None:
                parts[name] = part
            self.progress.step(name)
        return cls.from_pretrained(str(path), **kwargs, **parts)

    def _load_component(self, path: Path, name: str, library: str, class_name: str) -> Any | None:
        """One component of a pipeline folder by its class's from_pretrained; None leaves it to diffusers (a
        library or class this process does not know)."""
        import importlib

        try:
            component_cls = getattr(importlib.import_module(library), class_name)
        except (ImportError, AttributeError):
            return None
        kwargs: dict[str, Any] = {"subfolder": name}
        if isinstance(component_cls, type) and issubclass(component_cls, torch.nn.Module):
            if library.startswith("diffusers"):
                kwargs.update({dtype_kwarg(): self.dtype, "low_cpu_mem_usage": False})
            else:  # transformers: `dtype` since 4.56, `torch_dtype` before
                import transformers

                major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
                kwargs["dtype" if (major, minor) >= (4, 56) else "torch_dtype"] = self.dtype
        return component_cls.from_pretrained(str(path), **kwargs)

    def _resolve_path(self) -> Path:
        """Where the model's files are. Raises ModelUnavailable with what to do; a failed lookup is remembered
        for `resolve_retry_s`, so a canvas full of layers does not search the network once per layer."""
        if self._path is not None:
            return self._path
        # One lookup at a time: the loading thread and a render's cache key may both ask first, and a built-in
        # is built (once) by the first to ask.
        with self._path_lock:
            if self._path is not None:
                return self._path
            failed = self._unresolvable
            if failed is not None and time.monotonic() - failed[0] < self.options.resolve_retry_s:
                raise ModelUnavailable(failed[1])
            try:
                self._path = self._locate()
            except ModelUnavailable as exc:
                self._unresolvable = (time.monotonic(), str(exc))
                raise
            self._unresolvable = None
            return self._path

    def _locate(self) -> Path:
        spec = self.spec
        if spec.kind == "builtin":
            root = self.options.models_dir or default_models_dir()
            diffusers_quiet()  # imported whole, once, before the build imports parts of it (engine.models.libs)
            return tiny.ensure_tiny_model(root / f"builtin-{spec.location}-v{tiny.BUILD_VERSION}", spec.location)
        if spec.kind == "hub":
            return locate_hub_model(spec.location)
        path = Path(spec.location)
        if not path.exists():
            raise ModelUnavailable(f"model {spec} not found: no such file or folder on the server")
        return path

    def _load_base(self) -> Any:
        cls = getattr(diffusers_quiet(), self.family.pipelines["txt2img"])
        path = self._resolve_path()
        if self.spec.kind == "single_file":
            from engine.models.single_file import DerivedConfigs, load_single_file

            def derived(configs: DerivedConfigs) -> None:
                self._derived = configs
                self.progress.note(f"converting {path.name} (configs read from its tensor shapes)")

            self.progress.note(f"reading {path.name}")
            parts = self._named_parts()
            pipe = load_single_file(cls, path, self.family, self._from_pretrained_kwargs(), derived, parts)
        else:
            pipe = self._load_folder(cls, path)
        used = self._derived.companions if self._derived is not None else {}
        vae = None if "vae" in used else self._companion_vae()  # a transformer-only file's VAE is a part of it
        if vae is not None:
            pipe.register_modules(vae=vae)
        pipe.to(self.device)
        self._configure(getattr(pipe, self.family.denoiser), "denoise")  # a UNet or a transformer
        for name in self.family.text_encoders:
            if getattr(pipe, name, None) is not None:  # SD 3 runs without T5 (text_encoder_3=None)
                self._watch_module(getattr(pipe, name), "prepare")
        self._watch_module(pipe.vae.encoder, "encode")
        self._watch_module(pipe.vae.decoder, "decode")
        if self.options.vae_tiling:
            pipe.vae.enable_tiling()
        return pipe

    def _configure(self, module: Any, stage: str | None = None) -> None:
        if self.options.attention_slicing and hasattr(module, "set_attention_slice"):
            module.set_attention_slice("auto")
        module.eval()
        self._watch_module(module, stage)

    # --- cancellation inside a step ----------------------------------------------------------------------

    @contextlib.contextmanager
    def watching(self, ctx: RunContext) -> Iterator[None]:
        """While a render runs: every block of every module checks its cancellation and reports its stage."""
        self._watching = ctx
        try:
            yield
        finally:
            self._watching = None

    def _watch_module(self, module: Any, stage: str | None) -> None:
        """Forward pre-hooks on each block (every child of a ModuleList: UNet and VAE blocks, their resnets and
        attentions, text encoder layers): a cancelled render stops within one block, not at the end of a step
        or of the VAE decode, however large the image."""
        if getattr(module, "_opendream_watched", False):
            return
        module._opendream_watched = True

        def check(_module: Any, _args: Any) -> None:
            ctx = self._watching
            if ctx is not None:
                ctx.check_cancelled()

        if stage is not None:

            def enter(_module: Any, _args: Any) -> None:
                ctx = self._watching
                if ctx is not None:
                    ctx.stage(stage)
                    ctx.check_cancelled()

            module.register_forward_pre_hook(enter)
        for child in module.modules():
            if isinstance(child, torch.nn.ModuleList):
                for block in child:
                    block.register_forward_pre_hook(check)

    def companions(self) -> dict[str, str]:
        """The companions the library configures for this model: component name -> spec."""
        return self.library.companions_for(str(self.spec)) if self.library is not None else {}

    def _part_files(self, path: Path) -> list[Path]:
        """The separate files a transformer-only SD 3 / FLUX file will load with (read from headers alone), so
        that the memory budget counts them too; none for whole files and folders."""
        if not path.is_file() or self.family.denoiser == "unet":
            return []
        from engine.models.single_file import parts_plan

        try:
            plan = parts_plan(path, self.family, self._named_parts())
        except Exception:  # an unreadable header: the file's own size is the estimate, the load says why
            return []
        return [Path(part) for part in plan.parts.values()]

    def _named_parts(self) -> dict[str, Path]:
        """The files models.toml names for a transformer-only SD 3 / FLUX file's parts (engine.models.single_file
        takes the others from the models directory): part -> file."""
        if self.family.denoiser == "unet":
            return {}
        named = {part: Path(spec) for part, spec in self.companions().items() if part in TRANSFORMER_PARTS}
        return {part: path for part, path in named.items() if path.is_file()}

    def _companion_vae(self) -> Any | None:
        """The VAE the library configures in place of the model's own (a diffusers folder), or None."""
        spec = self.companions().get("vae")
        if not spec:
            return None
        path = Path(spec)
        if path.is_file():
            raise ModelUnavailable(
                f"the vae companion {path.name} is a single file: not loaded yet, use its diffusers folder "
                "(config.json + diffusion_pytorch_model.safetensors)"
            )
        kwargs: dict[str, Any] = {dtype_kwarg(): self.dtype, "low_cpu_mem_usage": False}
        if (path / "model_index.json").exists():
            kwargs["subfolder"] = "vae"
        return diffusers_quiet().AutoencoderKL.from_pretrained(spec, **kwargs)

    def _extra_source(self, name: str) -> tuple[Path | str, str | None] | None:
        """Where component `name` comes from: (folder or hub id, subfolder), or None if the model has none.
        (file, "single_file") for a companion checkpoint that is one file."""
        override = self.options.extras.get(name) or self.companions().get(name)
        if override:
            parsed = parse_model_spec(override)
            location: Path | str = parsed.location
            if parsed.kind == "single_file":
                return Path(location), "single_file"
            if parsed.kind == "folder" and (Path(location) / "model_index.json").exists():
                return location, "unet" if name != tiny.CONTROLNET_CANNY else None
            if parsed.kind == "hub" and name != tiny.CONTROLNET_CANNY:
                return location, "unet"
            return location, None
        if self.spec.kind == "single_file":
            return None
        candidate = self._resolve_path() / name
        return (candidate, None) if (candidate / "config.json").exists() else None

    def component(self, name: str) -> Any | None:
        """An extra component (see module docstring), loaded on first use; None when the model has none."""
        if name not in EXTRA_COMPONENTS:
            raise KeyError(name)
        self._ensure_base()
        source = self._extra_source(name)
        if name not in self._extras or self._extra_from.get(name) != source:  # a rescan may name another one
            with self._load_lock:
                if name not in self._extras or self._extra_from.get(name) != source:
                    self._extras[name] = self._load_extra(name, source)
                    self._extra_from[name] = source
        return self._extras[name]

    def _load_extra(self, name: str, source: tuple[Path | str, str | None] | None) -> Any | None:
        if source is None:
            return None
        diffusers = diffusers_quiet()
        location, subfolder = source
        if subfolder == "single_file":
            if name == tiny.CONTROLNET_CANNY:
                module = single_file_controlnet(name, Path(location), self._ensure_base().unet.config).to(self.dtype)
            else:
                module = self._single_file_unet(Path(location), name)
            module = module.to(self.device)
            self._configure(module, "denoise")
            return module
        cls = diffusers.ControlNetModel if name == tiny.CONTROLNET_CANNY else diffusers.UNet2DConditionModel
        kwargs: dict[str, Any] = {dtype_kwarg(): self.dtype, "low_cpu_mem_usage": False}
        if subfolder:
            kwargs["subfolder"] = subfolder
        module = cls.from_pretrained(str(location), **kwargs).to(self.device)
        self._configure(module, "denoise")
        return module

    def _single_file_unet(self, path: Path, name: str) -> Any:
        """The UNet of a single-file companion checkpoint (an inpainting or instruct-pix2pix model), converted
        offline like a base model's (engine.models.single_file); its other modules are dropped."""
        from engine.models.checkpoint import inspect_checkpoint
        from engine.models.families import INPAINTING, family_named
        from engine.models.single_file import load_single_file

        root = family_named(self.family.name.removesuffix("-inpaint"))
        family = inspect_checkpoint(path).family or root
        if name == tiny.INPAINT_UNET and family.name in INPAINTING:
            family = INPAINTING[family.name]
        cls = getattr(diffusers_quiet(), family.pipelines["txt2img"])
        pipe = load_single_file(cls, path, family, self._from_pretrained_kwargs(), lambda _configs: None)
        return pipe.unet

    # --- ControlNets by name (the generic `controlnet` operation) ------------------------------------------

    def controlnet_location(self, name: str) -> str:
        """Where ControlNet `name` is: a library entry's files; without a library a folder (or one next to the
        model's, e.g. "controlnet_canny") or a hub id."""
        if self.library is not None:
            from engine.models.library import UnknownModel

            try:
                return self.library.usable(name, "controlnet").spec
            except UnknownModel as exc:
                raise ModelUnavailable(str(exc)) from None
        path = Path(name).expanduser()
        if path.exists():
            return str(path.resolve())
        if self.spec.kind != "single_file" and not path.is_absolute():
            beside = self._resolve_path() / name  # a folder next to the model's, e.g. builtin:tiny's controlnet_canny
            if (beside / "config.json").exists():
                return str(beside)
        if name.count("/") == 1 and not name.startswith((".", "/", "~")):
            return name  # a hub id, from the local cache (or downloaded when the hub may be reached)
        raise ModelUnavailable(f"ControlNet {name!r} not found: no such file or folder on the server")

    def controlnet(self, name: str) -> Any:
        """ControlNet `name`, checked against this model's denoiser, loaded once (the most recently used
        CONTROLNET_CACHE are kept). A ControlNet of another family is refused with the reason."""
        location = self.controlnet_location(name)
        base = self._ensure_base()
        if "controlnet_canny" not in self.family.pipelines:
            raise CapabilityMissing(f"{self.family.title} has no ControlNet pipeline")
        with self._load_lock:
            module = self._controlnets.pop(location, None)
            if module is None:
                path = Path(location)
                if path.is_file():
                    module = single_file_controlnet(name, path, base.unet.config).to(self.dtype)
                else:
                    if path.is_dir():
                        check_controlnet_fits(name, _read_json(path / "config.json"), base.unet.config)
                    kwargs: dict[str, Any] = {dtype_kwarg(): self.dtype, "low_cpu_mem_usage": False}
                    module = diffusers_quiet().ControlNetModel.from_pretrained(location, **kwargs)
                check_controlnet_fits(name, dict(module.config), base.unet.config)
                module = module.to(self.device)
                self._configure(module, "denoise")
            self._controlnets[location] = module
            while len(self._controlnets) > CONTROLNET_CACHE:
                self._controlnets.popitem(last=False)
        return module

    def controlnet_pipeline(self, name: str, scheduler: str | None = None) -> Any:
        """The family's ControlNet pipeline (its controlnet_canny class) over the shared modules and ControlNet
        `name` (see `controlnet`)."""
        return self.pipeline("controlnet", scheduler, controlnet=self.controlnet(name))

    def taesd(self) -> Any | None:
        """The TAESD decoder for live previews (ModelOptions.taesd), loaded on first use; None without one."""
        spec = self.options.taesd
        if not spec:
            return None
        if self._taesd is None:
            with self._load_lock:
                if self._taesd is None:
                    diffusers = diffusers_quiet()
                    if spec == f"builtin:{tiny.TAESD_NAME}":
                        root = self.options.models_dir or default_models_dir()
                        location = str(tiny.ensure_tiny_taesd(root / f"builtin-{tiny.TAESD_NAME}-v1"))
                    else:
                        location = spec
                    module = diffusers.AutoencoderTiny.from_pretrained(
                        location, **{dtype_kwarg(): self.dtype}, low_cpu_mem_usage=False
                    ).to(self.device)
                    self._taesd = module.eval()
        return self._taesd

    # --- pipelines -------------------------------------------------------------------------------------

    def supports(self, kind: PipelineKind) -> bool:
        if kind not in self.family.pipelines:
            return False
        needed = COMPONENT_FOR_KIND.get(kind)  # inpaint has a fallback, see the module docstring
        return needed is None or self.component(needed) is not None

    def pipeline(self, kind: PipelineKind, scheduler: str | None = None, *, controlnet: Any = None) -> Any:
        """A pipeline for `kind` over the shared modules, with a fresh scheduler (`scheduler` names one): the
        family's class for that kind (engine.models.families), given the base model's components it takes.
        kind "controlnet": the family's ControlNet class over `controlnet` (see `controlnet_pipeline`)."""
        diffusers = diffusers_quiet()
        class_name = self.family.pipelines.get("controlnet_canny" if kind == "controlnet" else kind)
        if class_name is None:
            raise CapabilityMissing(f"{self.family.title} has no {kind} pipeline")
        cls = getattr(diffusers, class_name)
        base = self._ensure_base()
        parts = dict(base.components)
        parts["scheduler"] = (
            make_scheduler(scheduler, base.scheduler.config, self.family.prediction_type)
            if scheduler
            else type(base.scheduler).from_config(base.scheduler.config)
        )
        if kind == "inpaint":  # has a fallback: the base denoiser with latent blending (see the module docstring)
            denoiser = self.family.denoiser
            # only UNet families have an inpainting variant among the extra components ("unet_inpaint")
            variant = f"{denoiser}_inpaint"
            parts[denoiser] = (self.component(variant) if variant in EXTRA_COMPONENTS else None) or parts[denoiser]
        elif kind == "instruct_pix2pix":
            parts["unet"] = self._require(tiny.PIX2PIX_UNET, kind)
        elif kind == "controlnet_canny":
            parts["controlnet"] = self._require(tiny.CONTROLNET_CANNY, kind)
        elif kind == "controlnet":
            if controlnet is None:
                raise ValueError("a controlnet pipeline needs a ControlNet (see controlnet_pipeline)")
            parts["controlnet"] = controlnet
        accepted = _init_parameters(cls)
        arguments = {name: value for name, value in parts.items() if name in accepted}
        for name in accepted & {"safety_checker", "feature_extractor", "image_encoder"}:
            arguments.setdefault(name, None)
        if "requires_safety_checker" in accepted:
            arguments["requires_safety_checker"] = False
        pipe = cls(**arguments)
        pipe.set_progress_bar_config(disable=True)
        if self.family.masked_conditioning and kind != "inpaint":
            from engine.models.masked import WholeFrameInpaint

            return WholeFrameInpaint(pipe)
        return pipe

    def _require(self, name: str, kind: str) -> Any:
        module = self.component(name)
        if module is None:
            raise CapabilityMissing(
                f"model {self.spec} has no {name} component, needed by {kind} "
                f"(add a {name}/ folder next to it or set ModelOptions.extras[{name!r}])"
            )
        return module

    # --- identity --------------------------------------------------------------------------------------

    def model_hash(self) -> str:
        if self._model_hash is None:
            cache = HashCache(self.options.hash_cache or default_hash_cache())
            self._model_hash = hash_model_path(self._resolve_path(), cache)
        return self._model_hash

    def _location_hash(self, location: str) -> str:
        """A companion's or a ControlNet's content hash (a hub id: its name), computed once per location."""
        if location not in self._hashes:
            path = Path(location)
            cache = HashCache(self.options.hash_cache or default_hash_cache())
            self._hashes[location] = hash_model_path(path, cache) if path.exists() else f"spec:{location}"
        return self._hashes[location]

    def _companion_facts(self) -> dict[str, Any]:
        companions = self.companions()
        return {"companions": {name: self._location_hash(spec) for name, spec in sorted(companions.items())}} \
            if companions else {}  # fmt: skip

    def params_fingerprint(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """What a layer's params name besides the model and LoRAs that decides the pixels: the ControlNet of the
        generic `controlnet` operation, by name and content hash (a file replaced under one name misses)."""
        name = params.get("controlnet")
        if not name:
            return {}
        return {"controlnet": {"name": str(name), "sha256": self._location_hash(self.controlnet_location(str(name)))}}

    def _single_file_facts(self) -> dict[str, Any]:
        """A single file's derived configs (the same before and after it loads: they are read from its header)."""
        if self.spec.kind != "single_file":
            return {}
        if self._derived is None or self._base is None:  # not loaded: the parts it would load now (a T5 added)
            from engine.models.single_file import file_configs

            self._derived = file_configs(self._resolve_path(), self.family, self._named_parts())
        facts = self._derived.describe()
        if self._derived.companions:  # a transformer-only file's parts: their content enters the cache key too
            parts = self._derived.companions.items()
            facts["companions_sha256"] = {part: self._location_hash(file) for part, file in sorted(parts)}
        return {"single_file": facts}

    def fingerprint(self) -> dict[str, Any]:
        """What determines the pixels besides the operation, its params, inputs and seed.

        Two renders with equal fingerprints (and equal operation/params/inputs/seed) are bit-identical on CPU;
        see docs/reproducibility.md for what differs when a field differs.
        """
        diffusers = diffusers_quiet()  # never a half-imported module (engine.models.libs)

        return {
            "model": str(self.spec),
            "family": self.family.name,
            "model_hash": self.model_hash(),
            **self._single_file_facts(),
            **self._companion_facts(),
            "diffusers": diffusers.__version__,
            "torch": torch.__version__,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            # oneDNN and MKL pick their own kernels; these pin them (see docs/reproducibility.md)
            "cpu_env": {name: os.environ[name] for name in CPU_ISA_ENV if name in os.environ},
            "attention_slicing": self.options.attention_slicing,
            "vae_tiling": self.options.vae_tiling,
        }


@dataclass(frozen=True)
class LoraUse:
    """One LoRA applied to one render: its file, weight, and (for the fingerprint) name and hash."""

    name: str
    path: Path
    weight: float = 1.0
    sha256: str = ""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "weight": self.weight}


@dataclass(frozen=True)
class EmbeddingUse:
    """A textual-inversion embedding one render's prompt names (`token`: the file's name without suffix)."""

    name: str
    path: Path
    token: str
    sha256: str = ""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "token": self.token, "sha256": self.sha256}


def read_embedding(path: Path) -> dict[str, Any]:
    """An embedding file's vectors: {"*": [n, width]} (A1111's string_to_param / emb_params, diffusers' one-token
    dict), or SDXL's {"clip_l": …, "clip_g": …}. Read with safetensors or torch's weights_only."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state: dict[str, Any] = dict(load_file(str(path)))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if "clip_l" in state and "clip_g" in state:
        return {"clip_l": state["clip_l"], "clip_g": state["clip_g"]}
    if "string_to_param" in state:
        state = dict(state["string_to_param"])
    tensors = [value for value in state.values() if isinstance(value, torch.Tensor)]
    if len(tensors) != 1:
        raise CapabilityMissing(f"{path.name} is not a textual-inversion embedding ({len(tensors)} tensors)")
    vector = tensors[0]
    return {"*": vector if vector.dim() == 2 else vector.reshape(1, -1)}


def check_lora_fits(lora: LoraUse, denoiser: Any) -> None:
    """A LoRA made for another family is refused, saying so: its cross-attention layers must take the width of
    this model's text embeddings (SD 1.x 768, SD 2.x 1024, SDXL 2048)."""
    from engine.models.checkpoint import read_shapes
    from engine.models.library import CROSS_ATTENTION

    width = getattr(denoiser.config, "cross_attention_dim", None)
    for name, shape in read_shapes(lora.path).items():
        flat = name.replace("_", ".")
        if "attn2.to.k" in flat and ("lora.down" in flat or "lora.A" in flat) and len(shape) >= 2:
            if width is not None and shape[1] != width:
                made_for = CROSS_ATTENTION.get(shape[1])
                raise CapabilityMissing(
                    f"LoRA {lora.name!r} was made for "
                    + (f"a {made_for} model" if made_for else f"a model with {shape[1]}-wide text embeddings")
                    + f"; this model's are {width} wide: use it with a model of its family"
                )
            return


def check_controlnet_fits(name: str, controlnet: Mapping[str, Any], unet: Any) -> None:
    """A ControlNet made for another family is refused, saying so: its cross-attention must take this model's text
    embeddings (SD 1.x 768, SD 2.x 1024, SDXL 2048), and it must share SDXL's size conditioning or its absence."""
    from engine.models.families import FAMILIES
    from engine.models.library import CROSS_ATTENTION

    width = (
        getattr(unet, "cross_attention_dim", None) if not isinstance(unet, Mapping) else unet.get("cross_attention_dim")
    )
    theirs = controlnet.get("cross_attention_dim")
    if isinstance(theirs, int) and width is not None and theirs != width:
        made_for = CROSS_ATTENTION.get(theirs)
        raise CapabilityMissing(
            f"ControlNet {name!r} was made for "
            + (f"a {FAMILIES[made_for].title} model" if made_for else f"a model with {theirs}-wide text embeddings")
            + f"; this model's are {width} wide: use a ControlNet of its family"
        )
    embed = unet.get("addition_embed_type") if isinstance(unet, Mapping) else getattr(unet, "addition_embed_type", None)
    if "addition_embed_type" in controlnet and controlnet.get("addition_embed_type") != embed:
        raise CapabilityMissing(
            f"ControlNet {name!r} was made for another family (size conditioning "
            f"{controlnet.get('addition_embed_type')!r}, this model's {embed!r}): use a ControlNet of its family"
        )


def single_file_controlnet(name: str, path: Path, unet: Any) -> Any:
    """A ControlNet kept as one file (A1111 / ComfyUI `models/controlnet`: the original `control_model.` keys, or
    diffusers' own), loaded offline. What the file's shapes do not say is taken from the model's UNet, which a
    ControlNet copies (levels, attention, size conditioning); the conditioning encoder's channels are read from
    the shapes. diffusers converts the keys (convert_controlnet_checkpoint); loading is strict, so a file that does
    not fit this architecture is refused saying so, never half loaded."""
    import inspect

    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    from engine.models.checkpoint import read_shapes

    shapes = read_shapes(path)
    facts = _controlnet_shapes(shapes)
    check_controlnet_fits(name, {"cross_attention_dim": facts.pop("cross_attention_dim", None)}, unet)
    controlnet_cls = diffusers_quiet().ControlNetModel
    accepted = set(inspect.signature(controlnet_cls.__init__).parameters) - {"self"}
    config = {key: value for key, value in dict(unet).items() if key in accepted and not key.startswith("_")}
    config.update(facts)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    converted = convert_controlnet_checkpoint(state, config)
    module = controlnet_cls.from_config(config)
    try:
        module.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise ModelUnavailable(
            f"ControlNet {name!r} does not fit this model's architecture ({str(exc).splitlines()[0][:200]}): use a "
            "ControlNet made for it, or its diffusers folder"
        ) from None
    return module.eval()


def _controlnet_shapes(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    """What a single-file ControlNet's shapes say: its text width, input channels, conditioning channels."""
    diffusers_layout = "controlnet_cond_embedding.conv_in.weight" in shapes
    prefix = "" if diffusers_layout or "time_embed.0.weight" in shapes else "control_model."
    found: dict[str, Any] = {}
    for key, shape in shapes.items():
        flat = key.replace("_", ".")
        if "cross_attention_dim" not in found and "attn2.to.k" in flat and key.endswith("weight") and len(shape) == 2:
            found["cross_attention_dim"] = shape[1]
    conv_in = shapes.get("conv_in.weight" if diffusers_layout else f"{prefix}input_blocks.0.0.weight", ())
    if len(conv_in) == 4:
        found["in_channels"] = conv_in[1]
    if diffusers_layout:
        names = ["controlnet_cond_embedding.conv_in.weight"]
        index = 0
        while f"controlnet_cond_embedding.blocks.{index}.weight" in shapes:
            names.append(f"controlnet_cond_embedding.blocks.{index}.weight")
            index += 1
    else:  # input_hint_block.0, .2, .4, ...: convolutions between SiLUs, the last one the zero convolution
        names = []
        index = 0
        while f"{prefix}input_hint_block.{index}.weight" in shapes:
            names.append(f"{prefix}input_hint_block.{index}.weight")
            index += 2
        names = names[:-1]
    outs = [shapes[key][0] for key in names]
    if outs:
        found["conditioning_embedding_out_channels"] = (outs[0], *outs[2::2])
        found["conditioning_channels"] = shapes[names[0]][1]
    return found


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"{path.parent.name} is not a diffusers ControlNet folder ({path.name}: {exc})"
        ) from None
    return loaded if isinstance(loaded, dict) else {}


def locate_hub_model(repo_id: str) -> Path:
    """A hub model from the local Hugging Face cache; downloaded only when the hub may be reached.

    The cache is tried first and offline, so a cached model never waits on the network. When it is not
    cached, a download is attempted only if HF_HUB_OFFLINE is not set, and its failure is reported at once with
    what to do instead of being retried.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # a malformed cache entry, a bad id
        raise ModelUnavailable(f"model {repo_id!r} cannot be read from the Hugging Face cache: {exc}") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    hint = (
        f"download it on a machine with network (`hf download {repo_id}`) into the Hugging Face cache "
        f"({os.environ.get('HF_HOME') or '~/.cache/huggingface'}), or point the server at a local folder or "
        ".safetensors file"
    )
    if offline:
        raise ModelUnavailable(
            f"model {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: {hint}"
        )
    try:
        from diffusers import DiffusionPipeline

        with _short_hub_timeouts():
            return Path(DiffusionPipeline.download(repo_id))
    except Exception as exc:
        raise ModelUnavailable(
            f"model {repo_id!r} is not in the local Hugging Face cache and could not be downloaded "
            f"({type(exc).__name__}: {str(exc)[:300]}): {hint}"
        ) from None


@contextlib.contextmanager
def _short_hub_timeouts() -> Iterator[None]:
    # huggingface_hub reads these per request; the defaults wait ~10 s per try and retry.
    saved = {name: os.environ.get(name) for name in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")}
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


_INIT_PARAMETERS: dict[type, frozenset[str]] = {}


def _init_parameters(cls: type) -> frozenset[str]:
    """The components and options a pipeline class's constructor takes (read once per class)."""
    import inspect

    if cls not in _INIT_PARAMETERS:
        _INIT_PARAMETERS[cls] = frozenset(inspect.signature(cls.__init__).parameters) - {"self"}
    return _INIT_PARAMETERS[cls]


_CALL_PARAMETERS: dict[type, frozenset[str]] = {}


def call_arguments(pipe: Any, **arguments: Any) -> dict[str, Any]:
    """`arguments` less those the pipeline's __call__ does not take (read once per class): the operations pass
    one set of arguments (negative_prompt, guidance_scale, ...) to every family's pipelines."""
    import inspect

    cls = type(pipe)
    if cls not in _CALL_PARAMETERS:
        _CALL_PARAMETERS[cls] = frozenset(inspect.signature(cls.__call__).parameters) - {"self"}
    accepted = _CALL_PARAMETERS[cls]
    return {name: value for name, value in arguments.items() if name in accepted}


class ModelManager:
    """Model handles by spec, each loaded at most once per process."""

    def __init__(
        self,
        default: str | ModelSpec = "builtin:tiny",
        options: ModelOptions | None = None,
        progress: LoadProgress | None = None,
        library: ModelLibrary | None = None,
    ) -> None:
        self.default_spec = parse_model_spec(default)
        self.options = options or ModelOptions()
        self._progress = progress  # the default model's (the server reports it in /api/health)
        self._handles: dict[ModelSpec, ModelHandle] = {}
        self._lock = threading.Lock()
        # Companions and ControlNets by name (engine.models.library); the Renderer sets it from its own library.
        self.library: ModelLibrary | None = library

    def get(self, spec: str | ModelSpec | None = None) -> ModelHandle:
        parsed = self.default_spec if spec is None else parse_model_spec(spec)
        with self._lock:
            handle = self._handles.pop(parsed, None)
            if handle is None:
                progress = self._progress if parsed == self.default_spec else None
                handle = ModelHandle(parsed, self.options, progress)
            self._handles[parsed] = handle  # most recently used last
        handle.library = self.library
        return handle

    @property
    def memory_budget(self) -> int:
        if self.options.memory_budget is not None:
            return self.options.memory_budget
        device = select_device(self.options.device)
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory * 0.8)
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.5)

    def make_room(self, handle: ModelHandle) -> list[ModelHandle]:
        """Before `handle` loads: unload the least recently used models until it fits the memory budget.
        Returns the evicted handles. A model larger than the whole budget still loads, alone."""
        if handle.loaded:
            return []
        needed = handle.estimated_bytes()
        evicted: list[ModelHandle] = []
        for other in self.loaded():  # least recently used first
            if other is handle or sum(h.memory_bytes() for h in self.loaded()) + needed <= self.memory_budget:
                continue
            other.unload()
            evicted.append(other)
        return evicted

    def loaded(self) -> list[ModelHandle]:
        with self._lock:
            return [handle for handle in self._handles.values() if handle.loaded]

    def unload_changed(self) -> list[ModelHandle]:
        """Unload the loaded models whose part files changed (after the models directory is scanned again), so
        that their next render loads them with the parts that are there now. Returns them."""
        changed = [handle for handle in self.loaded() if handle.parts_changed()]
        for handle in changed:
            handle.unload()
        return changed
