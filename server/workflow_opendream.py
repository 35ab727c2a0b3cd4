"""Workflows saved by the original Opendream (2023): an object keyed by layer id, each
`{"op", "image": "data:image/png;base64,…", "params": [...], "options": {...}}`, layer arguments as id strings.

Each layer comes in with its picture and its provenance: generated layers as the operation that made them,
with its prompt, seed and settings, and the stored picture recorded as that layer's render (fingerprinted as
made by the original app); uploads and drawn masks as `upload` and `mask` layers of their images.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from typing import Any

from server.workflow import FORMAT, FORMAT_VERSION, InvalidWorkflow

KNOWN_OPS = {"dream", "mask_and_inpaint", "load_image", "mask", "instruct_pix2pix", "controlnet_canny", "sam"}


def looks_like_opendream_2023(document: dict[str, Any]) -> bool:
    return bool(document) and all(isinstance(layer, dict) and "op" in layer for layer in document.values())


def _image(data_url: Any, where: str) -> tuple[str, bytes]:
    if not isinstance(data_url, str) or not data_url.startswith("data:image/") or ";base64," not in data_url:
        raise InvalidWorkflow("image must be a data:image/...;base64 URL", where)
    try:
        data = base64.b64decode(data_url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidWorkflow("image is not valid base64", where) from None
    return hashlib.sha256(data).hexdigest(), data


def _size(data: bytes, where: str) -> tuple[int, int]:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data)).size
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidWorkflow(f"image is not readable: {exc}", where) from None


def convert_opendream_2023(document: dict[str, Any]) -> dict[str, Any]:
    keys = sorted(document, key=lambda key: (not str(key).isdigit(), int(key) if str(key).isdigit() else 0, key))
    ids = {key: f"layer-{key}" for key in keys}
    now = time.time()
    events: list[dict[str, Any]] = []
    blobs: dict[str, str] = {}

    def add(event_type: str, payload: dict[str, Any]) -> None:
        events.append({"seq": len(events) + 1, "type": event_type, "schema_version": 1, "payload": payload,
                       "actor": "opendream-2023", "command_id": None, "timestamp": now})  # fmt: skip

    add("canvas.created", {"name": "Imported from Opendream", "origin": None})
    last_image: str | None = None
    for key in keys:
        layer = document[key]
        where = f"layer {key!r}"
        op = layer.get("op")
        if op not in KNOWN_OPS:
            raise InvalidWorkflow(f"unknown Opendream operation {op!r}", where)
        params = layer.get("params") or []
        options = layer.get("options") or {}
        if not isinstance(params, list) or not isinstance(options, dict):
            raise InvalidWorkflow("params must be a list and options an object", where)

        def arg(index: int, what: str, *, layer_ref: bool = False, where: str = where, params: list = params) -> Any:
            if index >= len(params):
                raise InvalidWorkflow(f"missing parameter {index} ({what})", where)
            value = params[index]
            if layer_ref:
                if str(value) not in ids:
                    raise InvalidWorkflow(f"{what} refers to layer {value!r}, which is not in the file", where)
                return ids[str(value)]
            return value

        sha, data = _image(layer.get("image"), f"{where}.image")
        blobs[sha] = base64.b64encode(data).decode()
        layer_id = ids[key]
        seed = options.get("seed") if isinstance(options.get("seed"), int) else None
        generated: dict[str, Any] | None = None
        if op == "load_image":
            add("layer.added", _added(layer_id, "upload", {"blob": sha}, None, [], f"Image {key}"))
        elif op == "mask":
            if last_image is None:
                add("layer.added", _added(layer_id, "upload", {"blob": sha}, None, [], f"Mask {key}"))
            else:
                params_ = {"layer": last_image, "strokes": [], "blob": sha}
                add("layer.added", _added(layer_id, "mask", params_, None, [last_image], f"Mask {key}"))
        elif op == "dream":
            width, height = _size(data, where)
            generated = {"prompt": str(arg(0, "prompt")), "width": width - width % 8, "height": height - height % 8}
            add("layer.added", _added(layer_id, "txt2img", {**generated, **_steps(options)}, seed, [], f"Dream {key}"))
        elif op == "mask_and_inpaint":
            source, mask = arg(0, "image", layer_ref=True), arg(1, "mask", layer_ref=True)
            generated = {"source": source, "mask": mask, "prompt": str(arg(2, "prompt"))}
            add("layer.added", _added(layer_id, "inpaint", {**generated, **_steps(options)}, seed, [source, mask],
                                      f"Inpaint {key}"))  # fmt: skip
        elif op == "instruct_pix2pix":
            source = arg(0, "image", layer_ref=True)
            generated = {"source": source, "instruction": str(arg(1, "instruction"))}
            add("layer.added", _added(layer_id, "instruct_pix2pix", {**generated, **_steps(options)}, seed or 0,
                                      [source], f"Instruct {key}"))  # fmt: skip
        elif op == "controlnet_canny":
            source = arg(0, "image", layer_ref=True)
            generated = {"control": source, "prompt": str(arg(1, "prompt"))}
            add("layer.added", _added(layer_id, "controlnet_canny", {**generated, **_steps(options)}, seed,
                                      [source], f"ControlNet {key}"))  # fmt: skip
        elif op == "sam":
            source = arg(0, "image", layer_ref=True)
            add("layer.added", _added(layer_id, "segment", {"source": source}, None, [source], f"Segment {key}"))
            generated = {}
        if generated is not None:
            width, height = _size(data, where)
            fingerprint = {"source": "opendream-2023", "model": str(options.get("model_ckpt", "unknown")),
                           "device": str(options.get("device", "unknown"))}  # fmt: skip
            add("layer.rendered", {"layer_id": layer_id, "revision": 1, "output": sha, "width": width,
                                   "height": height, "fingerprint": fingerprint, "duration_ms": 0.0})  # fmt: skip
        if op != "mask":
            last_image = layer_id
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "generator": "opendream 2023 (converted)",
        "canvas": {"id": None, "name": "Imported from Opendream"},
        "events": events,
        "blobs": blobs,
    }


def _added(
    layer_id: str, operation: str, params: dict[str, Any], seed: int | None, parents: list[str], name: str
) -> dict:
    return {"layer_id": layer_id, "operation": operation, "params": params, "seed": seed, "parents": parents,
            "name": name}  # fmt: skip


def _steps(options: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if isinstance(options.get("num_steps"), int) and 1 <= options["num_steps"] <= 150:
        settings["steps"] = options["num_steps"]
    if isinstance(options.get("guidance_scale"), int | float) and 0 <= options["guidance_scale"] <= 30:
        settings["guidance"] = float(options["guidance_scale"])
    return settings
