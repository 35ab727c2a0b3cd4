"""Model spec strings: how the rest of the system names a model.

    builtin:tiny                       the seeded test model built by engine.models.tiny (SD 1.x-shaped)
    builtin:tiny-sdxl                  the same, SDXL-shaped (two text encoders, size conditioning)
    builtin:tiny-sd3 | tiny-flux       the same, SD 3- and FLUX.1-shaped (engine.models.tiny_dit)
    runwayml/stable-diffusion-v1-5     a Hugging Face hub repository (diffusers layout)
    /models/sd15  or  ./sd15           a local diffusers pipeline folder (model_index.json)
    /models/v1-5.safetensors | .ckpt   a single-file checkpoint (StableDiffusionPipeline.from_single_file)

An explicit prefix (`hub:`, `folder:`, `file:`) removes any guessing. Parsing is pure string work (plus a
stat for existing paths) so the server can validate a spec without importing torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SpecKind = Literal["builtin", "hub", "folder", "single_file"]

BUILTIN_MODELS = frozenset({"tiny", "tiny-sdxl", "tiny-sd3", "tiny-flux"})
SINGLE_FILE_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".bin")  # .sft: early FLUX files
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PREFIXES: dict[str, SpecKind] = {"hub": "hub", "folder": "folder", "file": "single_file"}


class InvalidModelSpec(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ModelSpec:
    kind: SpecKind
    # builtin name, hub repository id, or a filesystem path (expanded, not resolved)
    location: str

    def __str__(self) -> str:
        if self.kind == "builtin":
            return f"builtin:{self.location}"
        return self.location


def parse_model_spec(text: str | ModelSpec) -> ModelSpec:
    if isinstance(text, ModelSpec):
        return text
    spec = text.strip()
    if not spec:
        raise InvalidModelSpec("empty model spec")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "builtin":
        if rest not in BUILTIN_MODELS:
            raise InvalidModelSpec(f"unknown built-in model {rest!r} (known: {', '.join(sorted(BUILTIN_MODELS))})")
        return ModelSpec("builtin", rest)
    if sep and prefix in _PREFIXES and rest:
        kind = _PREFIXES[prefix]
        return ModelSpec(kind, rest if kind == "hub" else str(Path(rest).expanduser()))
    path = Path(spec).expanduser()
    if spec.lower().endswith(SINGLE_FILE_SUFFIXES):
        return ModelSpec("single_file", str(path))
    if path.is_dir() or spec.startswith(("/", ".", "~")) or (len(spec) > 1 and spec[1] == ":"):
        return ModelSpec("folder", str(path))
    if _HUB_ID.match(spec):
        return ModelSpec("hub", spec)
    raise InvalidModelSpec(
        f"cannot tell what model {spec!r} is: use builtin:NAME, a hub id like owner/name, "
        "a diffusers folder, or a .safetensors/.ckpt file"
    )
