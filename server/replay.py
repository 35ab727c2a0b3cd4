"""Replay: render a canvas again from scratch, ignoring the cache, and compare with what was recorded.

Each layer is rendered from the *replayed* images of its inputs, in dependency order, so a difference shows
where it starts and how it propagates. A layer that could not render hands its *recorded* images (when they are
at hand) to the layers that read it, and those say so. Verdicts (docs/reproducibility.md):

- `identical`: the same pixels;
- `within_tolerance`: no channel of any pixel differs by more than the tolerance (max diff and PSNR given);
- `different`: more than that, or only the recorded hash is known and it is not the replayed one;
- `size_differs`: the recorded and the replayed images have different sizes (both are given);
- `not_comparable`: the recorded image was made by another engine or model (its fingerprint is given);
- `could_not_render`: the layer cannot be rendered here (the reason is given);
- `not_rendered`: rendered now, but nothing was recorded to compare with.

Only the first four are verifications; `different` and `size_differs` are failures of one.
"""

from __future__ import annotations

import io
import math
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from server.blobstore import BlobStore
from server.core.state import CanvasState, Layer

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.render import Renderer

Outcome = Literal[
    "identical",
    "within_tolerance",
    "different",
    "size_differs",
    "not_comparable",
    "could_not_render",
    "not_rendered",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
VERIFIED: frozenset[str] = frozenset({"identical", "within_tolerance", "different", "size_differs"})
"""Outcomes where a recorded image was checked against a re-render by the same engine."""
DIFFERS: frozenset[str] = frozenset({"different", "size_differs"})


@dataclass(frozen=True)
class LayerVerdict:
    layer_id: str
    operation: str
    outcome: Outcome
    recorded: str | None  # sha256 of the recorded output
    replayed: str | None
    max_diff: int | None = None  # largest difference of one channel of one pixel, 0..255
    psnr: float | None = None  # dB; inf when identical
    error: str | None = None  # why it could not render, or what could not be compared
    recorded_size: tuple[int, int] | None = None  # width, height
    replayed_size: tuple[int, int] | None = None
    recorded_fingerprint: Mapping[str, Any] | None = None  # given when the outcome is not_comparable
    inputs_from_record: tuple[str, ...] = ()  # inputs that could not render: their recorded images were used
    replayed_fingerprint: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def detail(self) -> str:
        """One line for people: the numbers and reasons behind the outcome."""
        parts: list[str] = []
        if self.outcome == "within_tolerance" or (self.outcome == "different" and self.max_diff is not None):
            parts.append(f"max diff {self.max_diff}, PSNR {self.psnr:.1f} dB")
        recorded, replayed = self.recorded_size, self.replayed_size
        if self.outcome in ("size_differs", "not_comparable") and recorded and replayed and recorded != replayed:
            parts.append(f"recorded {_size(recorded)}, replayed {_size(replayed)}")
        if self.outcome == "not_comparable":
            parts.insert(0, f"recorded by {describe_fingerprint(self.recorded_fingerprint)}")
        if self.error:
            parts.append(self.error)
        if self.inputs_from_record:
            names = ", ".join(repr(layer_id) for layer_id in self.inputs_from_record)
            parts.append(f"from the recorded image of {names} (could not render)")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["replayed_fingerprint"]
        if self.psnr is not None and math.isinf(self.psnr):
            data["psnr"] = "inf"
        for key in ("recorded_size", "replayed_size"):
            if data[key] is not None:
                data[key] = list(data[key])
        data["inputs_from_record"] = list(self.inputs_from_record)
        data["detail"] = self.detail
        return data


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def describe_fingerprint(fingerprint: Mapping[str, Any] | None) -> str:
    """What made an image, as far as its fingerprint says."""
    if not fingerprint:
        return "an unknown engine (no fingerprint recorded)"
    if "source" in fingerprint:  # e.g. {"source": "opendream-2023", "original": {"op", "params", "options"}}
        original = fingerprint.get("original") if isinstance(fingerprint.get("original"), Mapping) else {}
        options = original.get("options") if isinstance(original.get("options"), Mapping) else {}
        known = [str(original["op"])] if "op" in original else []
        for key, option in (("model", "model_ckpt"), ("device", "device")):
            value = fingerprint.get(key, options.get(option))
            if value is not None:
                known.append(f"{key} {value}")
        return f"{fingerprint['source']}" + (f" ({', '.join(known)})" if known else "")
    if "model" in fingerprint:
        model_hash = str(fingerprint.get("model_hash") or "unknown hash")
        return f"model {fingerprint['model']} ({model_hash[:19]})"
    if "engine" in fingerprint:
        return f"engine {fingerprint['engine']}"
    return "an unknown engine (" + ", ".join(f"{key}={value}" for key, value in fingerprint.items()) + ")"


def same_engine(recorded: Mapping[str, Any] | None, replayed: Mapping[str, Any]) -> bool:
    """Whether a re-render by `replayed` can be expected to reproduce an image fingerprinted `recorded`: the same
    model weights for model operations, the same engine for the others. Threads, devices and library versions
    may differ: that is what the tolerance is for."""
    recorded = recorded or {}
    if "source" in recorded:  # made outside this engine (an original Opendream file)
        return False
    if "model_hash" in replayed:
        return recorded.get("model_hash") == replayed["model_hash"]
    if "engine" in replayed and "engine" in recorded:
        return recorded["engine"] == replayed["engine"]
    return "model_hash" not in recorded


def compare(recorded: Image, replayed: Image) -> tuple[int, float] | None:
    """(max channel difference, PSNR) of two images of the same size; None when their sizes differ."""
    import numpy as np

    a = np.asarray(recorded.convert("RGB"), dtype=np.int16)
    b = np.asarray(replayed.convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        return None
    diff = np.abs(a - b)
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
    return int(diff.max()), psnr


def replay_state(
    state: CanvasState,
    blobs: BlobStore,
    renderer: Renderer,
    tolerance: int = 2,
    on_layer: Callable[[LayerVerdict], None] | None = None,
    images: dict[str, list[Image]] | None = None,
) -> list[LayerVerdict]:
    """Render every layer of `state` again, without the cache, and judge each against its recorded output.
    `images`, when given, is filled with every layer's re-rendered images (layers that could not render have
    none)."""
    replayed: dict[str, list[Image]] = {} if images is None else images
    fallback: dict[str, list[Image]] = {}  # recorded images of layers that could not render
    verdicts: dict[str, LayerVerdict] = {}
    for layer in state.topological_order():
        verdict = _replay_layer(layer, blobs, renderer, replayed, fallback, tolerance)
        verdicts[layer.id] = verdict
        if verdict.outcome == "could_not_render":
            recorded = _recorded_images(layer, blobs)
            if recorded is not None:
                fallback[layer.id] = recorded
        if on_layer is not None:
            on_layer(verdict)
    return [verdicts[layer_id] for layer_id in state.order]


def _recorded_images(layer: Layer, blobs: BlobStore) -> list[Image] | None:
    from PIL import Image

    if layer.output is None or layer.status not in ("rendered", "stale"):
        return None
    if not all(blobs.exists(sha) for sha in layer.output.images):
        return None
    loaded = []
    for sha in layer.output.images:
        image = Image.open(io.BytesIO(blobs.get(sha)))
        image.load()
        loaded.append(image)
    return loaded


def _replay_layer(
    layer: Layer,
    blobs: BlobStore,
    renderer: Renderer,
    replayed: dict[str, list[Image]],
    fallback: dict[str, list[Image]],
    tolerance: int,
) -> LayerVerdict:
    from PIL import Image

    from engine.operation import input_refs
    from engine.png import encode_png
    from server.render_queue import InputUnavailable, resolve_inputs

    output = layer.output if layer.status == "rendered" else None
    recorded = output.sha256 if output is not None else None
    recorded_size = (output.width, output.height) if output is not None else None
    from_record: tuple[str, ...] = ()

    def verdict(outcome: Outcome, replayed_sha: str | None = None, **extra: Any) -> LayerVerdict:
        return LayerVerdict(layer.id, layer.operation, outcome, recorded, replayed_sha,
                            recorded_size=recorded_size, inputs_from_record=from_record, **extra)  # fmt: skip

    operation = renderer.registry.get(layer.operation)
    if operation is None:
        reason = renderer.registry.unavailable().get(layer.operation)
        return verdict("could_not_render", error=f"operation {layer.operation!r} is not available here"
                       + (f": {reason}" if reason else " (a missing extension?)"))  # fmt: skip
    try:
        parents = list(dict.fromkeys(input_refs(operation, layer.params).values()))
    except Exception:
        parents = []
    from_record = tuple(parent for parent in parents if parent not in replayed and parent in fallback)
    try:
        inputs = resolve_inputs(operation, layer, ChainMap(replayed, fallback))
    except InputUnavailable as exc:
        missing = [parent for parent in parents if parent not in replayed and parent not in fallback]
        reason = str(exc)
        if missing:
            names = ", ".join(repr(parent) for parent in missing)
            reason = f"input {names} could not render and has no recorded image at hand"
        return verdict("could_not_render", error=reason)
    try:
        result = renderer.render(layer.operation, layer.params, layer.seed, inputs, blob_reader=blobs.get)
    except Exception as exc:
        return verdict("could_not_render", error=f"{type(exc).__name__}: {exc}")
    replayed[layer.id] = result.images
    image = result.images[0]
    sha = blobs.put(encode_png(image))
    common: dict[str, Any] = {"replayed_size": image.size, "replayed_fingerprint": result.fingerprint}
    if output is None:
        return verdict("not_rendered", sha, **common)
    if recorded == sha:
        return verdict("identical", sha, max_diff=0, psnr=math.inf, **common)
    if not same_engine(output.fingerprint, result.fingerprint):
        return verdict("not_comparable", sha, recorded_fingerprint=dict(output.fingerprint), **common)
    if recorded_size != image.size:
        return verdict("size_differs", sha, **common)
    if not blobs.exists(recorded):
        return verdict("different", sha, error="the recorded image is not at hand: only its hash was compared",
                       **common)  # fmt: skip
    recorded_image = Image.open(io.BytesIO(blobs.get(recorded)))
    compared = compare(recorded_image, image)
    if compared is None:  # the recorded PNG is not the size its event says
        return verdict("size_differs", sha, **{**common, "error": f"the recorded PNG is {_size(recorded_image.size)}"})
    max_diff, psnr = compared
    outcome: Outcome = "identical" if max_diff == 0 else "within_tolerance" if max_diff <= tolerance else "different"
    return verdict(outcome, sha, max_diff=max_diff, psnr=psnr, **common)
