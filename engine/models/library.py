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
                                [[model]] name = "sd15", spec = "checkpoints/v1-5.safetensors",
                                          inpaint = "checkpoints/v1-5-inpainting.safetensors",
                                          pix2pix = "checkpoints/instruct-pix2pix", controlnet_canny = "canny",
                                          vae = "vae/vae-ft-mse"

An entry is named by its path under the directory ("checkpoints/dreamshaper_8.safetensors") or by its
models.toml name; that name is what a layer's `model` / `loras` params record. A file that is not what its
folder says (a LoRA among the checkpoints, a damaged file) is listed as unusable, with the reason. Hashes are
computed once per file (cached by path, size and mtime) and only when asked for: a library of 40 GB scans in
milliseconds.

Companions (COMPANION_ROLES) are named by a base entry of models.toml: a library entry's name, or a path
(relative to models.toml), or a hub id. Each is checked against the base model at scan time, from configs and
tensor shapes alone (the width of its text embeddings, its UNet's input channels, its latent channels); one that
does not fit is listed, on the base entry, as unusable with the reason, and is not used. The loader
(engine.models.loader) asks `companions_for(spec)` for the usable ones.
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from engine.models.checkpoint import SAFETENSORS_SUFFIXES, NotACheckpoint, classify, inspect_checkpoint, read_shapes
from engine.models.families import FAMILIES, ModelFamily, UnknownFamily, model_capabilities
from engine.models.fingerprint import HashCache, hash_model_path

EntryKind = Literal["checkpoint", "lora", "controlnet", "vae", "embedding", "text_encoder"]
FOLDERS: dict[str, EntryKind] = {
    "checkpoints": "checkpoint",
    "diffusion_models": "checkpoint",  # ComfyUI's folders for a transformer alone (BFL's flux1-dev.safetensors)
    "unet": "checkpoint",
    "loras": "lora",
    "controlnet": "controlnet",
    "vae": "vae",
    "embeddings": "embedding",
}
FILE_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".bin", ".pth")
CONFIG_NAME = "models.toml"
# The cross-attention width of a family's UNet: what a LoRA's or a ControlNet's attention layers must fit.
CROSS_ATTENTION: dict[int, str] = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
# A base entry's companion keys in models.toml -> (the loader's component name, the kind of entry it is).
COMPANION_ROLES: dict[str, tuple[str, EntryKind]] = {
    "inpaint": ("unet_inpaint", "checkpoint"),  # an inpainting checkpoint: its 9-channel UNet
    "pix2pix": ("unet_pix2pix", "checkpoint"),  # an instruct-pix2pix model: its 8-channel UNet
    "controlnet_canny": ("controlnet_canny", "controlnet"),  # the ControlNet the controlnet_canny operation uses
    "vae": ("vae", "vae"),  # a VAE replacing the model's own (for a transformer-only file: its VAE part)
    # a transformer-only SD 3 / FLUX file's text encoders, when several files in text_encoders/ would fit
    "clip_l": ("clip_l", "text_encoder"),
    "clip_g": ("clip_g", "text_encoder"),
    "t5xxl": ("t5xxl", "text_encoder"),
}
# What the role's UNet takes in: latents (4) + mask (1) + masked image (4); latents + source image latents.
ROLE_CHANNELS = {"inpaint": 9, "pix2pix": 8}


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
    # A base model's companions (COMPANION_ROLES): role -> as models.toml names it (an entry, a path, a hub id);
    # the usable ones' specs, and why the others cannot be used.
    companions: Mapping[str, str] = field(default_factory=dict)
    companion_specs: Mapping[str, str] = field(default_factory=dict)
    companion_problems: Mapping[str, str] = field(default_factory=dict)
    # A transformer-only file's parts taken from separate files (engine.models.single_file): part -> path
    parts: Mapping[str, str] = field(default_factory=dict)
    note: str | None = None  # what a usable entry lacks and what that costs (SD 3 without T5)

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
            "companions": {
                role: {
                    "name": name,
                    "usable": role not in self.companion_problems,
                    "problem": self.companion_problems.get(role),
                }
                for role, name in self.companions.items()
            },
            "parts": dict(self.parts),
            "note": self.note,
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
        if "string_to_param" in shapes and path.suffix.lower() != ".safetensors":  # A1111's .pt: a nested dict
            import torch

            nested = torch.load(str(path), map_location="meta", weights_only=True)["string_to_param"]
            shapes = {f"string_to_param.{key}": tuple(value.shape) for key, value in nested.items()}
    except (NotACheckpoint, KeyError, AttributeError, TypeError) as exc:
        return None, str(exc) or f"{path.name} cannot be read as an embedding"
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


@dataclass(frozen=True)
class ModelFacts:
    """What a companion must match, read from configs or tensor shapes (None: not told)."""

    text_width: int | None = None  # the UNet's / ControlNet's cross-attention width
    in_channels: int | None = None  # the UNet's input channels
    latent_channels: int | None = None  # the VAE's


def _json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def model_facts(spec: str, part: str = "unet") -> ModelFacts:
    """The facts of a model's UNet (part="unet") or VAE (part="vae"), from a diffusers folder's configs (a
    pipeline folder, or the part's own folder), or a .safetensors file's shapes; nothing for what cannot be read
    without loading it (a hub id, a built-in not yet built, a .ckpt)."""
    path = Path(spec)
    if not path.is_absolute() or not path.exists():
        return ModelFacts()
    if path.is_dir():
        config = _json(path / part / "config.json") if (path / "model_index.json").exists() else {}
        config = config or _json(path / "config.json")
        width = config.get("cross_attention_dim")
        return ModelFacts(
            width if isinstance(width, int) else None,
            config.get("in_channels") if part == "unet" else None,
            config.get("latent_channels") if part == "vae" else None,
        )
    if path.suffix.lower() != ".safetensors":
        return ModelFacts()
    try:
        shapes = read_shapes(path)
    except NotACheckpoint:
        return ModelFacts()
    width = in_channels = latent = None
    for name, shape in shapes.items():
        flat = name.replace("_", ".")
        if (
            width is None
            and "attn2.to.k" in flat
            and "lora" not in flat
            and name.endswith("weight")
            and len(shape) == 2
        ):
            width = shape[1]
        if in_channels is None and name.endswith(("diffusion_model.input_blocks.0.0.weight", "conv_in.weight")) \
                and "encoder" not in name and "decoder" not in name and len(shape) == 4:  # fmt: skip
            in_channels = shape[1]
        if latent is None and name.endswith("quant_conv.weight") and "post_quant" not in name and len(shape) == 4:
            latent = shape[0] // 2  # mean and log-variance
    return ModelFacts(width, in_channels if part == "unet" else None, latent if part == "vae" else None)


def _family_root(name: str | None) -> str | None:
    """The family a companion must share: an inpainting variant is its family's, SD 2.x v and epsilon alike."""
    if name is None:
        return None
    name = name.removesuffix("-inpaint")
    return "sd2" if name == "sd2-v" else name


def companion_problem(role: str, spec: str, base: LibraryEntry) -> str | None:
    """Why companion `spec` cannot serve `base` in `role` (COMPANION_ROLES), or None when it fits (or cannot be
    told before loading: a hub id)."""
    kind = COMPANION_ROLES[role][1]
    if kind == "text_encoder" or (kind == "vae" and Path(spec).is_file()):  # a transformer-only file's part
        from engine.models.single_file import part_problem

        return part_problem(role, Path(spec)) if Path(spec).is_file() else f"{role} part {spec}: not a file"
    if kind == "vae":
        facts = model_facts(spec, "vae")
        family = FAMILIES.get(base.family or "")
        if facts.latent_channels is not None and family is not None and facts.latent_channels != family.latent_channels:
            return (
                f"vae companion has {facts.latent_channels} latent channels; {family.title} models have "
                f"{family.latent_channels}: it belongs to another family"
            )
        return None
    facts, base_facts = model_facts(spec), model_facts(base.spec)
    if facts.text_width is not None and base_facts.text_width is not None and facts.text_width != base_facts.text_width:
        made_for = CROSS_ATTENTION.get(facts.text_width)
        return (
            f"{role} companion was made for "
            + (
                f"a {FAMILIES[made_for].title} model"
                if made_for
                else f"a model with {facts.text_width}-wide text embeddings"
            )
            + f"; this model's are {base_facts.text_width} wide: it belongs to another family"
        )
    told = CROSS_ATTENTION.get(facts.text_width or 0)
    if told is not None and base.family is not None and _family_root(told) != _family_root(base.family):
        return (
            f"{role} companion was made for a {FAMILIES[told].title} model; this one is "
            f"{FAMILIES[base.family].title if base.family in FAMILIES else base.family}: it belongs to another family"
        )
    wanted = ROLE_CHANNELS.get(role)
    if wanted is not None and facts.in_channels is not None and facts.in_channels != wanted:
        what = {"inpaint": "an inpainting model", "pix2pix": "an instruct-pix2pix model"}[role]
        return f"{role} companion is not {what}: its UNet takes {facts.in_channels} input channels, not {wanted}"
    return None


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
            for name, entry in found.items():
                if entry.companions:
                    found[name] = self._with_companions(entry, found)
        named: dict[str, dict[str, str]] = {}  # companions belong to the files: every entry of a spec uses them
        for entry in found.values():
            named.setdefault(entry.spec, {}).update(entry.companion_specs)
        found = {name: self._with_parts(entry, named.get(entry.spec, {})) for name, entry in found.items()}
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
            entry = self._entry(name, kind, spec, "models.toml", item.get("family"))
            companions = {role: item[role] for role in COMPANION_ROLES if role in item}
            unknown = sorted(set(item) - {"name", "spec", "kind", "family", *COMPANION_ROLES})
            if unknown:
                problem = f"unknown keys {', '.join(unknown)} (companions: {', '.join(COMPANION_ROLES)})"
                entry = replace(entry, problem=entry.problem or f"{CONFIG_NAME} [[model]] {name!r}: {problem}")
            if companions:
                entry = replace(entry, companions={role: str(value) for role, value in companions.items()})
            entries.append(entry)
        return entries

    # --- companions ----------------------------------------------------------------------------------

    def _with_companions(self, base: LibraryEntry, found: Mapping[str, LibraryEntry]) -> LibraryEntry:
        """`base` with its companions resolved and checked against it; the capabilities they add."""
        specs: dict[str, str] = {}
        problems: dict[str, str] = {}
        for role, named in base.companions.items():
            spec, problem = self._companion_spec(role, named, found)
            if problem is None and spec is not None:
                problem = companion_problem(role, spec, base)
            if problem is None and spec is not None:
                specs[role] = spec
            else:
                problems[role] = problem or f"{named!r}: not found"
        if base.kind != "checkpoint":
            problems.update(
                {role: f"only a checkpoint has companions, {base.name!r} is a {base.kind}" for role in specs}
            )
            specs = {}
        capabilities = dict(base.capabilities)
        for role, kind in (("pix2pix", "instruct_pix2pix"), ("controlnet_canny", "controlnet_canny")):
            if (
                role in specs
                and kind in capabilities
                and "has no" in str(capabilities[kind])
                and "component" in str(capabilities[kind])
            ):
                capabilities[kind] = None  # the family runs it; the missing component is now configured
        return replace(base, companion_specs=specs, companion_problems=problems, capabilities=capabilities)

    def _with_parts(self, entry: LibraryEntry, companions: Mapping[str, str]) -> LibraryEntry:
        """A transformer-only SD 3 / FLUX file: usable when the models directory (or models.toml) has the parts it
        lacks, listing them; otherwise unusable, naming each part missing. Told from headers alone."""
        from engine.models.single_file import DENOISER_CONFIGS, parts_plan

        family = FAMILIES.get(entry.family or "")
        path = entry.path
        if entry.problem or family is None or family.denoiser_class not in DENOISER_CONFIGS or path is None:
            return entry
        if not path.is_file() or path.suffix.lower() not in SAFETENSORS_SUFFIXES:
            return entry
        named = {role: Path(spec) for role, spec in companions.items() if Path(spec).is_file()}
        plan = parts_plan(path, family, named)
        parts = {part: self._shown(Path(file)) for part, file in plan.parts.items()}
        return replace(entry, parts=parts, problem=plan.problem, note=plan.note)

    def _shown(self, path: Path) -> str:
        """A file as clients see it: its path in the models directory, else its name (no server paths)."""
        root = self.root.resolve() if self.root is not None else None
        resolved = path.resolve()
        return resolved.relative_to(root).as_posix() if root and resolved.is_relative_to(root) else path.name

    def _companion_spec(
        self, role: str, named: str, found: Mapping[str, LibraryEntry]
    ) -> tuple[str | None, str | None]:
        """(spec, problem) of a companion named in models.toml: a library entry, a path, a hub id."""
        kind = COMPANION_ROLES[role][1]
        entry = found.get(named)
        if entry is not None:
            if entry.kind != kind:
                return None, f"{role} companion {named!r} is a {entry.kind} entry, not a {kind}"
            if entry.problem and not (role == "pix2pix" and "8 input channels" in entry.problem):
                return None, f"{role} companion {named!r} cannot be used: {entry.problem}"
            return entry.spec, None
        path = Path(named).expanduser()
        if not path.is_absolute() and self.root is not None:
            path = self.root / path
        if path.exists():
            return str(path.resolve()), None
        if named.startswith("builtin:") or (named.count("/") == 1 and not named.startswith((".", "/", "~"))):
            return named, None  # a hub id (or a built-in): told when it loads
        return None, f"{role} companion {named!r}: no library entry of that name, and no such file or folder"

    def companions_for(self, spec: str) -> dict[str, str]:
        """The usable companions of model `spec` (every entry naming those files): component name -> spec."""
        from engine.models.spec import InvalidModelSpec, parse_model_spec

        try:
            wanted = parse_model_spec(spec)
        except InvalidModelSpec:
            return {}
        found: dict[str, str] = {}
        for entry in self.entries("checkpoint"):
            if not entry.companion_specs:
                continue
            try:
                same = parse_model_spec(entry.spec) == wanted
            except InvalidModelSpec:
                same = False
            if same:
                found.update({COMPANION_ROLES[role][0]: value for role, value in entry.companion_specs.items()})
        return found

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
                info = inspect_checkpoint(path) if path.suffix.lower() in SAFETENSORS_SUFFIXES else None
                if info is not None and info.kind != "checkpoint":
                    folder = {"lora": "loras/", "controlnet": "controlnet/", "vae": "vae/"}.get(info.kind)
                    hint = f": put it in {folder}" if folder else ""
                    return LibraryEntry(name, "checkpoint", spec, None, f"{path.name} is {info.what}{hint}", size,
                                        source=source)  # fmt: skip
            family, capabilities = model_capabilities(spec, family_override)
            if family is not None:  # the generic controlnet operation: any ControlNet of the library
                has = "controlnet_canny" in family.pipelines
                capabilities = {
                    **capabilities,
                    "controlnet": None if has else f"{family.title} has no ControlNet pipeline",
                }
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
