"""Replay: render a canvas again from scratch, ignoring the cache, and compare with what was recorded.

Each layer is rendered from the *replayed* images of its inputs, in dependency order, so a difference shows
where it starts and how it propagates. Verdicts: identical bytes of pixels; within a stated tolerance (max
pixel difference, PSNR); different; or could not render.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from server.blobs import BlobStore
from server.core.state import CanvasState, Layer

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.render import Renderer

Outcome = Literal["identical", "within_tolerance", "different", "not_rendered", "failed"]


@dataclass(frozen=True)
class LayerVerdict:
    layer_id: str
    operation: str
    outcome: Outcome
    recorded: str | None  # sha256 of the recorded output
    replayed: str | None
    max_diff: int | None = None  # largest difference of one channel of one pixel, 0..255
    psnr: float | None = None  # dB; inf when identical
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.psnr is not None and math.isinf(self.psnr):
            data["psnr"] = "inf"
        return data


def compare(recorded: Image, replayed: Image) -> tuple[int, float]:
    import numpy as np

    a = np.asarray(recorded.convert("RGB"), dtype=np.int16)
    b = np.asarray(replayed.convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        return 255, 0.0
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
) -> list[LayerVerdict]:
    """Render every layer of `state` again, without the cache, and judge each against its recorded output."""
    replayed: dict[str, list[Image]] = {}
    verdicts: dict[str, LayerVerdict] = {}
    for layer in state.topological_order():
        verdict = _replay_layer(layer, blobs, renderer, replayed, tolerance)
        verdicts[layer.id] = verdict
        if on_layer is not None:
            on_layer(verdict)
    return [verdicts[layer_id] for layer_id in state.order]


def _replay_layer(
    layer: Layer, blobs: BlobStore, renderer: Renderer, replayed: dict[str, list[Image]], tolerance: int
) -> LayerVerdict:
    from PIL import Image

    from engine.png import encode_png
    from server.renders import InputUnavailable, resolve_inputs

    recorded = layer.output.sha256 if layer.output is not None and layer.status == "rendered" else None

    def verdict(outcome: Outcome, replayed_sha: str | None = None, **extra: Any) -> LayerVerdict:
        return LayerVerdict(layer.id, layer.operation, outcome, recorded, replayed_sha, **extra)

    operation = renderer.registry.get(layer.operation)
    if operation is None:
        return verdict("failed", error=f"operation {layer.operation!r} is not available")
    try:
        inputs = resolve_inputs(operation, layer, replayed)
    except InputUnavailable as exc:
        return verdict("failed", error=str(exc))
    try:
        result = renderer.render(layer.operation, layer.params, layer.seed, inputs, blob_reader=blobs.get)
    except Exception as exc:
        return verdict("failed", error=f"{type(exc).__name__}: {exc}")
    replayed[layer.id] = result.images
    image = result.images[0]
    sha = blobs.put(encode_png(image))
    if recorded is None:
        return verdict("not_rendered", sha)
    if recorded == sha:
        return verdict("identical", sha, max_diff=0, psnr=math.inf)
    if not blobs.exists(recorded):
        return verdict("different", sha, error="the recorded image is not at hand: only its hash could be compared")
    max_diff, psnr = compare(Image.open(io.BytesIO(blobs.get(recorded))), image)
    outcome: Outcome = "identical" if max_diff == 0 else "within_tolerance" if max_diff <= tolerance else "different"
    return verdict(outcome, sha, max_diff=max_diff, psnr=psnr)
