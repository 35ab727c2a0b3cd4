"""The model library: every model a server can use, told apart from its files alone (no torch, no network).

A models directory is laid out as ComfyUI and A1111 users keep theirs, and `models.toml` adds entries that are
not files in it (hub ids, folders elsewhere, companions):

    models/
      checkpoints/   base models: .safetensors / .ckpt single files, or diffusers folders (model_index.json)
      loras/         LoRA adapters (.safetensors; kohya / A1111 and diffusers / PEFT key layouts)
      controlnet/    ControlNets (single files or diffusers folders)
      vae/           VAEs
      embeddings/    textual-inversion embeddings
      models.toml    optional:  [[model]] name = "sdxl", spec = "stabilityai/stable-diffusion-xl-base-1.0"
                                [[model]] name = "canny", kind = "controlnet", spec = "/srv/cn/canny"

An entry is named by its path under the directory ("checkpoints/dreamshaper_8.safetensors") or by its
models.toml name; that name is what a layer's `model` / `loras` params record. A file that is not what its
folder says (a LoRA among the checkpoints, a damaged file) is listed as unusable, with the reason. Hashes are
computed once per file (cached by path, size and mtime) and only when asked for: a library of 40 GB scans in
milliseconds.
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from engine.models.checkpoint import NotACheckpoint, classify, inspect_checkpoint, read_shapes
from engine.models.families import FAMILIES, ModelFamily, UnknownFamily, model_capabilities
from engine.models.fingerprint import HashCache, hash_model_path

EntryKind = Literal["checkpoint", "lora", "controlnet", "vae", "embedding"]
FOLDERS: dict[str, EntryKind] = {
    "checkpoints": "checkpoint",
    "loras": "lora",
    "controlnet": "controlnet",
    "vae": "vae",
    "embeddings": "embedding",
}
FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin", ".pth")
CONFIG_NAME = "models.toml"
# The cross-attention width of a family's UNet: what a LoRA's or a ControlNet's attention layers must fit.
CROSS_ATTENTION: dict[int, str] = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


class UnknownModel(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class LibraryEntry:
    name: str
    kind: EntryKind
    spec: str  # what engine.models.spec parses: a path, a hub id, builtin:NAME
    family: str | None = None  # engine.models.families name; for a LoRA / ControlNet: the family it fits
    problem: str | None = None  # why it cannot be used (None: usable)
    size_bytes: int | None = None
    capabilities: Mapping[str, str | None] = field(default_factory=dict)  # checkpoints: kind -> None or why not
    source: str = "directory"  # "directory", "models.toml", "server" (the --model default)

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def path(self) -> Path | None:
        candidate = Path(self.spec)
        return candidate if candidate.is_absolute() and candidate.exists() else None

    def describe(self) -> dict[str, Any]:
        family = FAMILIES.get(self.family or "")
        return {
            "name": self.name,
            "kind": self.kind,
            "family": self.family,
            "family_title": family.title if family else None,
            "native_size": family.native_size if family and self.kind == "checkpoint" else None,
            "capabilities": dict(self.capabilities),
            "size_bytes": self.size_bytes,
            "usable": self.usable,
            "problem": self.problem,
            "source": self.source,
        }


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def cross_attention_family(shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """The family an adapter's attention layers fit, by the width of its cross-attention keys (attn2.to_k),
    the one width that differs between SD 1.x (768), SD 2.x (1024) and SDXL (2048)."""
    for name, shape in shapes.items():
        flat = name.replace("_", ".")
        if "attn2.to.k" in flat and len(shape) >= 2 and ("lora.down" in flat or "lora.A" in flat or "weight" in flat):
            family = CROSS_ATTENTION.get(shape[1])
            if family is not None:
                return family
    if any(name.startswith(("lora_te2_", "text_encoder_2.")) for name in shapes):
        return "sdxl"
    return None


def inspect_lora(path: Path) -> tuple[str | None, str | None]:
    """(family it fits, problem) of a LoRA file, from its keys and shapes."""
    try:
        shapes = read_shapes(path)
    except NotACheckpoint as exc:
        return None, str(exc)
    info = classify(shapes)
    if info.kind != "lora":
        return None, f"{path.name} is {info.what}, not a LoRA"
    return cross_attention_family(shapes), None


def inspect_embedding(path: Path) -> tuple[str | None, str | None]:
    """Textual inversion: A1111's {"string_to_param": {"*": [n, width]}} / {"emb_params": …}, SDXL's
    {"clip_l": …, "clip_g": …}; the width tells the family (768 SD 1.x, 1024 SD 2.x)."""
    try:
        shapes = read_shapes(path)
    except NotACheckpoint as exc:
        return None, str(exc)
    if {"clip_l", "clip_g"} <= set(shapes):
        return "sdxl", None
    widths = {shape[-1] for name, shape in shapes.items() if shape}
    if len(shapes) <= 4 and widths & {768, 1024}:
        return ("sd1" if 768 in widths else "sd2"), None
    if len(shapes) <= 4:
        return None, None
    return None, f"{path.name} holds {len(shapes)} tensors: not a textual-inversion embedding"


def inspect_companion(path: Path, kind: EntryKind) -> tuple[str | None, str | None]:
    """A ControlNet or a VAE: (family it fits, problem)."""
    if path.is_dir():
        config = path / "config.json"
        try:
            loaded = json.loads(config.read_text())
        except (OSError, ValueError):
            return None, f"{path.name} is a folder without a diffusers config.json"
        if kind == "controlnet":
            return CROSS_ATTENTION.get(int(loaded.get("cross_attention_dim") or 0)), None
        return ("sd3" if loaded.get("latent_channels") == 16 else None), None
    try:
        shapes = read_shapes(path)
    except NotACheckpoint as exc:
        return None, str(exc)
    info = classify(shapes)
    if kind == "controlnet":
        if info.kind != "controlnet":
            return None, f"{path.name} is {info.what}, not a ControlNet"
        return cross_attention_family(shapes), None
    if info.kind != "vae":
        return None, f"{path.name} is {info.what}, not a VAE"
    return None, None


class ModelLibrary:
    """The models a server offers: its default, a models directory and a models.toml, scanned on request."""

    def __init__(
        self,
        default: str = "builtin:tiny",
        root: Path | None = None,
        *,
        family_override: str | None = None,
        hash_cache: HashCache | None = None,
    ) -> None:
        self.default = default
        self.root = root
        self.family_override = family_override
        self.hash_cache = hash_cache or HashCache(None)
        self._lock = threading.Lock()
        self._entries: dict[str, LibraryEntry] = {}
        self._hashes: dict[str, str] = {}
        self.scan()

    # --- scanning ------------------------------------------------------------------------------------

    def scan(self) -> list[LibraryEntry]:
        found: dict[str, LibraryEntry] = {}
        default = self._checkpoint(self.default, self.default, "server", self.family_override)
        found[default.name] = default
        if self.root is not None and self.root.is_dir():
            for folder, kind in FOLDERS.items():
                for path in self._files(self.root / folder, kind):
                    name = f"{folder}/{path.relative_to(self.root / folder).as_posix()}"
                    found[name] = self._entry(name, kind, str(path.resolve()), "directory")
            for entry in self._configured(self.root / CONFIG_NAME):
                found[entry.name] = entry
        with self._lock:
            self._entries = found
        return list(found.values())

    @staticmethod
    def _files(folder: Path, kind: EntryKind) -> Iterable[Path]:
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.rglob("*")):
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            if any(parent in found for parent in path.parents):
                continue  # inside a folder model
            folder_model = path.is_dir() and any((path / name).exists() for name in ("model_index.json", "config.json"))
            if folder_model or (path.is_file() and path.suffix.lower() in FILE_SUFFIXES):
                found.append(path)
        return found

    def _configured(self, config: Path) -> list[LibraryEntry]:
        if not config.exists():
            return []
        try:
            loaded = tomllib.loads(config.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problem = f"{CONFIG_NAME} cannot be read: {exc}"
            return [LibraryEntry(CONFIG_NAME, "checkpoint", str(config), problem=problem)]
        entries = []
        for index, item in enumerate(loaded.get("model", [])):
            name, spec = item.get("name"), item.get("spec")
            kind = item.get("kind", "checkpoint")
            if not isinstance(name, str) or not isinstance(spec, str) or kind not in FOLDERS.values():
                where = f"{CONFIG_NAME} [[model]] #{index + 1}"
                problem = f"{where} needs a name, a spec and a kind among {', '.join(FOLDERS.values())}"
                entries.append(LibraryEntry(where, "checkpoint", str(config), problem=problem))
                continue
            if not spec.startswith("builtin:") and not Path(spec).expanduser().is_absolute() and "/" in spec:
                local = (config.parent / spec).expanduser()
                spec = str(local.resolve()) if local.exists() else spec  # a relative path, else a hub id
            entries.append(self._entry(name, kind, spec, "models.toml", item.get("family")))
        return entries

    def _entry(self, name: str, kind: EntryKind, spec: str, source: str, family: str | None = None) -> LibraryEntry:
        if kind == "checkpoint":
            return self._checkpoint(name, spec, source, family)
        path = Path(spec)
        if not path.exists():
            return LibraryEntry(name, kind, spec, family, problem=f"{spec}: no such file or folder", source=source)
        inspect = {"lora": inspect_lora, "embedding": inspect_embedding}.get(kind)
        told, problem = inspect(path) if inspect else inspect_companion(path, kind)
        return LibraryEntry(name, kind, spec, family or told, problem, _size(path), source=source)

    def _checkpoint(self, name: str, spec: str, source: str, family_override: str | None) -> LibraryEntry:
        from engine.models.families import availability
        from engine.models.spec import InvalidModelSpec

        path = Path(spec)
        size = _size(path) if path.is_absolute() and path.exists() else None
        try:
            problem = availability(spec)
            if problem and "first render downloads" in problem:
                problem = None  # a hub id that may still be fetched: usable, said in the log
            if path.is_file() and path.exists():
                info = inspect_checkpoint(path) if path.suffix.lower() == ".safetensors" else None
                if info is not None and info.kind != "checkpoint":
                    folder = {"lora": "loras/", "controlnet": "controlnet/", "vae": "vae/"}.get(info.kind)
                    hint = f": put it in {folder}" if folder else ""
                    return LibraryEntry(name, "checkpoint", spec, None, f"{path.name} is {info.what}{hint}", size,
                                        source=source)  # fmt: skip
            family, capabilities = model_capabilities(spec, family_override)
        except (InvalidModelSpec, UnknownFamily, NotACheckpoint, OSError) as exc:
            return LibraryEntry(name, "checkpoint", spec, None, str(exc), size, source=source)
        return LibraryEntry(
            name, "checkpoint", spec, family.name if family else None, problem, size, capabilities, source
        )

    # --- reading -------------------------------------------------------------------------------------

    def entries(self, kind: EntryKind | None = None) -> list[LibraryEntry]:
        with self._lock:
            return [entry for entry in self._entries.values() if kind is None or entry.kind == kind]

    def get(self, name: str, kind: EntryKind | None = None) -> LibraryEntry:
        with self._lock:
            entry = self._entries.get(name)
        if entry is None or (kind is not None and entry.kind != kind):
            known = ", ".join(e.name for e in self.entries(kind)) or "none"
            raise UnknownModel(f"no {kind or 'model'} named {name!r} in the library (known: {known})")
        return entry

    def usable(self, name: str, kind: EntryKind) -> LibraryEntry:
        entry = self.get(name, kind)
        if entry.problem:
            raise UnknownModel(f"{kind} {name!r} cannot be used: {entry.problem}")
        return entry

    def checkpoints_for(self, family: ModelFamily | str | None = None) -> list[LibraryEntry]:
        """Usable checkpoints (of one family, when given), the server's default first."""
        name = family.name if isinstance(family, ModelFamily) else family
        return [
            entry for entry in self.entries("checkpoint") if entry.usable and (name is None or entry.family == name)
        ]

    def sha256(self, name: str) -> str:
        """The entry's content hash, computed once (cached by path, size and mtime across restarts)."""
        if name not in self._hashes:
            entry = self.get(name)
            path = entry.path
            self._hashes[name] = hash_model_path(path, self.hash_cache) if path else f"spec:{entry.spec}"
        return self._hashes[name]

    def describe(self, loaded: Iterable[str] = ()) -> list[dict[str, Any]]:
        loaded_specs = set(loaded)
        return [
            {**entry.describe(), "loaded": entry.spec in loaded_specs, "default": entry.name == self.default}
            for entry in self.entries()
        ]

    def with_family(self, name: str, family: str) -> None:
        """Record a family found out later (a .ckpt is told only when torch reads it)."""
        with self._lock:
            if name in self._entries:
                self._entries[name] = replace(self._entries[name], family=family)
