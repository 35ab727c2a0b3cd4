"""The synchronous renderer a queue worker calls (in a thread): operation name + params + seed -> images."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import PIL
import torch
from PIL import Image

from engine.blobs import BlobReader
from engine.builtins import default_registry
from engine.context import CancelCheck, ProgressCallback, RunContext, StageCallback
from engine.errors import MissingInput, ModelUnavailable, RenderCancelled
from engine.limits import OverLimit, RenderLimits
from engine.models.fingerprint import HashCache, hash_model_path
from engine.models.library import ModelLibrary, UnknownModel
from engine.models.loader import EmbeddingUse, LoraUse, ModelManager
from engine.models.spec import ModelSpec
from engine.operation import Operation, OperationRegistry, validate_params
from engine.png import encode_png
from engine.preview import PreviewCallback, Previewer

__all__ = ["RenderResult", "Renderer", "ReproducibleMode", "encode_png"]

MAX_SEED = 2**63 - 1
EDIT_ENGINE = "opendream-edit"  # the fingerprint's "engine" for operations that do not use the diffusion model


@dataclass(frozen=True)
class ReproducibleMode:
    """Pins what can be pinned at runtime for bit-identical CPU output across processes and machines.

    The intra-op thread count changes how float sums are split, and so the last bits of the pixels; pinning
    it makes machines with different core counts agree. The instruction set (AVX2 vs AVX-512) cannot be
    changed once torch is loaded: start the process with ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA and MKL_CBWR
    set (recorded in the fingerprint); `cpu_capability` refuses to run when torch's does not match.
    See docs/reproducibility.md for measurements.
    """

    threads: int = 1
    deterministic_algorithms: bool = True
    cpu_capability: str | None = None  # e.g. "AVX2"; None accepts whatever the machine has

    def apply(self) -> None:
        actual = torch.backends.cpu.get_cpu_capability()
        if self.cpu_capability and actual.upper() != self.cpu_capability.upper():
            raise RuntimeError(
                f"reproducible mode wants CPU capability {self.cpu_capability}, torch uses {actual}: start the "
                f"process with ATEN_CPU_CAPABILITY={self.cpu_capability.lower()} "
                f"ONEDNN_MAX_CPU_ISA={self.cpu_capability.upper()} MKL_CBWR={self.cpu_capability.upper()}"
            )
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if self.deterministic_algorithms and not torch.are_deterministic_algorithms_enabled():
            # cuBLAS needs a fixed workspace to be deterministic; it must be set before its first use.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True

    def describe(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "deterministic_algorithms": self.deterministic_algorithms,
            "cpu_capability": self.cpu_capability,
        }


@dataclass
class RenderResult:
    images: list[Image.Image]
    fingerprint: dict[str, Any]
    duration_ms: float
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


PROMPT_PARAMS = ("prompt", "negative_prompt", "instruction")  # where an embedding's token may be written


class Renderer:
    def __init__(
        self,
        models: ModelManager,
        registry: OperationRegistry | None = None,
        *,
        reproducible: ReproducibleMode | bool | None = None,
        blob_reader: BlobReader | None = None,
        limits: RenderLimits | None = None,
        library: ModelLibrary | None = None,
    ) -> None:
        self.models = models
        # Names in a layer's `model` / `loras` params -> files (engine.models.library); without a library a
        # `model` param is a model spec and LoRAs are paths (scripts, tests).
        self.library = library
        self._lora_hashes = HashCache(None)  # LoRAs named by path (no library): hashed once per file version
        if library is not None and getattr(models, "library", None) is None:
            models.library = library  # companions and ControlNets by name (engine.models.loader)
        self.limits = limits  # None: no limits (scripts, tests); the server always sets them
        self.registry = registry or default_registry()
        self.reproducible = ReproducibleMode() if reproducible is True else (reproducible or None)
        self.blob_reader = blob_reader  # the default for render(); e.g. the server's BlobStore.get
        if self.reproducible is not None:
            self.reproducible.apply()

    def load_model(self, model: str | ModelSpec | None = None) -> None:
        """Load and warm up a model now (a server does it right after starting) rather than in the first render;
        its handle's `progress` tells how far it is. Raises ModelUnavailable with the reason."""
        handle = self.models.get(model)
        with handle.lock:
            handle.load()

    def render(
        self,
        operation_name: str,
        params: Mapping[str, Any],
        seed: int | None,
        inputs: Mapping[str, Image.Image],
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
        *,
        model: str | ModelSpec | None = None,
        blob_reader: BlobReader | None = None,
        preview: PreviewCallback | None = None,
        stage: StageCallback | None = None,
    ) -> RenderResult:
        """Run one operation. `inputs` maps each layer reference's path ("source", "layers.0.layer") — or the
        layer id it names — to its image; `blob_reader` (sha256 -> bytes) overrides the renderer's default.

        A generating operation given no seed gets a random one, returned in the result so it can be recorded.
        Only operations with `needs_model` load the diffusion model. `preview(step, total, PreviewImage)` gets
        throttled previews of a diffusion render; `stage(name)` hears "prepare", "encode", "denoise", "decode".
        Raises InvalidParams, MissingInput, MissingBlob, InvalidBlob, CapabilityMissing, OverLimit,
        ModelUnavailable, RenderCancelled (checked before, inside every model block, between steps, and after).
        """
        operation = self.registry.get(operation_name)
        if operation is None:
            raise KeyError(f"unknown operation {operation_name!r}")
        validated = validate_params(operation, params)
        typed = operation.Params.model_validate(validated.params)
        images = _inputs_by_param(operation_name, validated.inputs, inputs)
        if self.limits is not None:
            estimate = operation.estimate(typed, {path: image.size for path, image in images.items()}, self.limits)
            problem = None if estimate is None else self.limits.check(operation_name, estimate)
            if problem is not None:
                raise OverLimit(problem)
        if operation.uses_seed:
            seed = secrets.randbelow(2**32) if seed is None else seed
            if not 0 <= seed <= MAX_SEED:
                raise ValueError(f"seed must be in 0..{MAX_SEED}")
        else:
            seed = None

        # Building a handle loads nothing; only `needs_model` operations load (and lock) the diffusion model.
        model = model or self.model_spec(validated.params)
        loras = self.lora_uses(validated.params)
        embeddings = self.embedding_uses(validated.params)
        handle = self.models.get(model)
        ctx = RunContext(
            model=handle,
            seed=seed,
            progress_callback=progress,
            cancelled=cancelled,
            blob_reader=blob_reader or self.blob_reader,
            limits=self.limits,
            stage_callback=stage,
        )
        ctx.check_cancelled()
        if operation.needs_model:
            with handle.lock:
                self.models.make_room(handle)  # least recently used models out, within the memory budget
                handle.load()  # loading is not part of the render's duration
                if preview is not None:
                    ctx.previewer = Previewer(preview, handle.preview_family, handle.taesd())
                ctx.check_cancelled()
                ctx.stage("prepare")
                with handle.watching(ctx), handle.adapters(loras), handle.embeddings(embeddings):
                    output, duration_ms = self._run(operation, ctx, images, typed)
                fingerprint = self.fingerprint(model, loras, validated.params, embeddings)
        else:
            output, duration_ms = self._run(operation, ctx, images, typed)
            fingerprint = self.fingerprint_for(operation_name, model)
        if cancelled is not None and cancelled():  # too late to stop it, not too late to drop it
            raise RenderCancelled("render cancelled")
        outputs = output if isinstance(output, list) else [output]
        if not outputs or not all(isinstance(image, Image.Image) for image in outputs):
            raise TypeError(f"operation {operation_name!r} must return a PIL image or a non-empty list of them")
        return RenderResult(images=outputs, fingerprint=fingerprint, duration_ms=duration_ms, seed=seed)

    def _run(
        self, operation: type[Operation], ctx: RunContext, images: dict[str, Image.Image], params: Any
    ) -> tuple[Image.Image | list[Image.Image], float]:
        if self.reproducible is not None:
            self.reproducible.apply()
        started = time.perf_counter()
        with torch.inference_mode():
            output = operation().run(ctx, images, params)
        return output, (time.perf_counter() - started) * 1000.0

    def fingerprint(
        self,
        model: str | ModelSpec | None = None,
        loras: list[LoraUse] | None = None,
        params: Mapping[str, Any] | None = None,
        embeddings: list[EmbeddingUse] | None = None,
    ) -> dict[str, Any]:
        """The diffusion model's fingerprint (what `needs_model` operations are cached under), with the LoRAs
        applied (their content hashes: a LoRA file replaced under the same name misses the cache), what else
        `params` name (the generic controlnet's ControlNet) and the embeddings the prompts name."""
        handle = self.models.get(model)
        fingerprint = handle.fingerprint()
        if params:
            fingerprint.update(handle.params_fingerprint(params))
        fingerprint["reproducible"] = self.reproducible.describe() if self.reproducible else None
        if loras:
            fingerprint["loras"] = [lora.describe() for lora in loras]
        if embeddings:
            fingerprint["embeddings"] = [embedding.describe() for embedding in embeddings]
        return fingerprint

    def embedding_uses(self, params: Mapping[str, Any]) -> list[EmbeddingUse]:
        """The library's embeddings that the prompts name by their file's name, as in A1111 ("a photo in
        my-style" uses embeddings/my-style.safetensors)."""
        if self.library is None:
            return []
        text = " ".join(str(params.get(key) or "") for key in PROMPT_PARAMS)
        if not text.strip():
            return []
        uses = []
        for entry in self.library.entries("embedding"):
            token = Path(entry.name).stem
            if entry.usable and re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text):
                uses.append(EmbeddingUse(entry.name, Path(entry.spec), token, self.library.sha256(entry.name)))
        return uses

    def model_spec(self, params: Mapping[str, Any]) -> str | None:
        """The model a layer's `model` param names (None: the server's default)."""
        name = params.get("model")
        if not name:
            return None
        if self.library is None:
            return str(name)
        try:
            return self.library.usable(str(name), "checkpoint").spec
        except UnknownModel as exc:
            raise ModelUnavailable(str(exc)) from None

    def lora_uses(self, params: Mapping[str, Any]) -> list[LoraUse]:
        uses = []
        for item in params.get("loras") or ():
            name, weight = str(item["name"]), float(item.get("weight", 1.0))
            if self.library is None:
                uses.append(LoraUse(name, Path(name), weight, hash_model_path(Path(name), self._lora_hashes)))
                continue
            try:
                entry = self.library.usable(name, "lora")
            except UnknownModel as exc:
                raise ModelUnavailable(str(exc)) from None
            uses.append(LoraUse(name, Path(entry.spec), weight, self.library.sha256(name)))
        return uses

    def fingerprint_for(
        self,
        operation_name: str,
        model: str | ModelSpec | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What decides the pixels of `operation_name` besides its params, inputs and seed (the model and LoRAs
        its `params` name, when given).

        The model fingerprint for operations that need the diffusion model; for the rest only the libraries
        and the operation's version, so that an upload or a crop keeps its cache key when the model changes
        (and computing it never builds or hashes the model).
        """
        operation = self.registry.get(operation_name)
        if operation is None:
            raise KeyError(f"unknown operation {operation_name!r}")
        if operation.needs_model:
            params = params or {}
            return self.fingerprint(
                model or self.model_spec(params), self.lora_uses(params), params, self.embedding_uses(params)
            )
        return {
            "engine": EDIT_ENGINE,
            "pillow": PIL.__version__,
            "numpy": numpy.__version__,
            "operation_version": operation.version,
            **operation.fingerprint_extra(),
        }


def _inputs_by_param(
    operation_name: str, wanted: Mapping[str, str], given: Mapping[str, Image.Image]
) -> dict[str, Image.Image]:
    found: dict[str, Image.Image] = {}
    for param, layer_id in wanted.items():  # param: a reference's path, "source" or "layers.0.layer"
        image = given.get(param, given.get(layer_id))
        if image is None:
            raise MissingInput(f"{operation_name}: no image for input {param!r} (layer {layer_id!r})")
        found[param] = image
    return found
