"""Workflows saved by the original Opendream (varunshenoy/opendream, 2023), converted into ours.

The original's file is `Canvas.get_workflow()`: an object keyed by layer id (in canvas order), each layer's
metadata as its `define_op` decorator recorded it — `{"op": func.__name__, "image": pil_to_b64(output),
"params": positional args, "options": keyword args}`, layer arguments replaced by their ids — or, for uploads
and drawn masks, `{"op": "load_image" | "mask", "image": …}`. The web UI sends every optional argument (its
form fills in the signature's defaults) and the server turns digit strings into ints; `opendream.save()` from a
Python script records only what the script passed, positionally or by keyword.

So each op is bound to its real signature, defaults included (`SIGNATURES`, copied from the original's
`opendream.py` and bundled `extensions/`), and mapped by `OPS` to one of our operations. Each layer keeps the
picture the original made, recorded as its render (fingerprint `{"source": "opendream-2023", "original": the
layer's metadata without its image}`), so nothing re-renders on import. Best effort, never silent: a layer we
cannot run (`controlnet_openpose`, third-party extensions such as DALL-E, arguments we cannot bind) becomes an
`upload` of its stored picture, named after the original op, and the import answers with one warning per such
layer. See docs/workflow-format.md for the table.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import time
import warnings as pywarnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.workflow.format import FORMAT, FORMAT_VERSION, InvalidWorkflow

SOURCE = "opendream-2023"
REQUIRED = object()  # a parameter without a default
KEPT_FORMATS = {"PNG", "JPEG", "WEBP"}  # what our blob store takes as it is; the rest is re-encoded to PNG
DECODED_FORMATS = ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"]
KEPT_MODES = {"RGB", "RGBA", "L", "LA"}

# The original's signatures, in order, with their defaults; True: it also took `**kwargs` (accepted, ignored).
_DREAM = [("model_ckpt", "runwayml/stable-diffusion-v1-5"), ("seed", 42), ("device", "mps"), ("batch_size", 1)]
_CONTROLNET = [("control_image_layer", REQUIRED), ("prompt", REQUIRED), ("device", "cpu"),
               ("model_ckpt", "runwayml/stable-diffusion-v1-5"), ("batch_size", 1), ("seed", 42), ("selected", 0),
               ("num_steps", 20)]  # fmt: skip
_INPAINT = [("mask_layer", REQUIRED), ("image_layer", REQUIRED), ("prompt", REQUIRED),
            ("model_ckpt", "stabilityai/stable-diffusion-2-inpainting"), ("seed", 42), ("device", "mps"),
            ("batch_size", 1), ("selected", 0), ("num_steps", 20), ("guidance_scale", 11)]  # fmt: skip
SIGNATURES: dict[str, tuple[list[tuple[str, Any]], bool]] = {
    # opendream/opendream.py
    "dream": ([("prompt", REQUIRED), *_DREAM, ("selected", 0), ("num_steps", 20), ("guidance_scale", 7.5)], True),
    "mask_and_inpaint": (_INPAINT, True),
    # opendream/extensions/
    "instruct_pix2pix": ([("image_layer", REQUIRED), ("prompt", REQUIRED), ("device", "mps")], False),
    "controlnet_canny": (_CONTROLNET, True),
    "controlnet_openpose": (_CONTROLNET, True),
    "sam": ([("image_layer", REQUIRED)], False),
    # opendream/server.py: /add_layer and /add_mask record no arguments
    "load_image": ([], False),
    "mask": ([], False),
}


class Unsupported(Exception):
    """This layer cannot be one of our operations: it comes in as its picture, with this as the warning."""


@dataclass
class Layer:
    key: str
    op: str
    args: dict[str, Any]  # bound to the signature, defaults filled in
    sha: str  # its picture, as stored
    size: tuple[int, int]
    metadata: dict[str, Any]  # the original's, without the image


@dataclass
class Mapped:
    operation: str
    params: dict[str, Any]
    seed: int | None
    name: str


def _ref(layer: Layer, name: str, ids: dict[str, str]) -> str:
    value = layer.args[name]
    if str(value) not in ids:
        raise Unsupported(f"its {name} refers to layer {value!r}, which is not in the file")
    return ids[str(value)]


def _int(layer: Layer, name: str, low: int, high: int) -> int:
    value = layer.args[name]
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Unsupported(f"its {name} {value!r} is not a whole number from {low} to {high}")
    return value


def _float(layer: Layer, name: str, low: float, high: float) -> float:
    value = layer.args[name]
    try:
        number = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise Unsupported(f"its {name} {value!r} is not a number from {low} to {high}")
    return number


def _seed(layer: Layer) -> int:
    """The seed of the picture shown: the original seeded picture i of a batch with `seed + i` and kept `selected`."""
    batch = _int(layer, "batch_size", 1, 1000)
    selected = _int(layer, "selected", 0, batch - 1)
    return _int(layer, "seed", 0, 2**63 - 1 - selected) + selected


def _dream(layer: Layer, ids: dict[str, str]) -> Mapped:
    width, height = layer.size
    params = {"prompt": str(layer.args["prompt"]), "width": width - width % 8, "height": height - height % 8,
              "steps": _int(layer, "num_steps", 1, 150), "guidance": _float(layer, "guidance_scale", 0, 30),
              "scheduler": "pndm"}  # fmt: skip  # SD 1.5's own scheduler; the original set none
    if min(params["width"], params["height"]) < 64 or max(params["width"], params["height"]) > 2048:
        raise Unsupported(f"its picture is {width}x{height}; txt2img makes 64 to 2048 pixels a side")
    return Mapped("txt2img", params, _seed(layer), f"Dream {layer.key}")


def _inpaint(layer: Layer, ids: dict[str, str]) -> Mapped:
    params = {"source": _ref(layer, "image_layer", ids), "mask": _ref(layer, "mask_layer", ids),
              "prompt": str(layer.args["prompt"]), "strength": 1.0, "steps": _int(layer, "num_steps", 1, 150),
              "guidance": _float(layer, "guidance_scale", 0, 30), "scheduler": "pndm"}  # fmt: skip
    return Mapped("inpaint", params, _seed(layer), f"Inpaint {layer.key}")


def _pix2pix(layer: Layer, ids: dict[str, str]) -> Mapped:
    # The extension's fixed settings: 10 steps, image guidance 1, EulerAncestral, the pipeline's guidance 7.5.
    # It passed no generator (an unseeded picture): seed 0 is recorded.
    params = {"source": _ref(layer, "image_layer", ids), "instruction": str(layer.args["prompt"]), "steps": 10,
              "guidance": 7.5, "image_guidance": 1.0, "scheduler": "euler_a"}  # fmt: skip
    return Mapped("instruct_pix2pix", params, 0, f"Instruct {layer.key}")


def _canny(layer: Layer, ids: dict[str, str]) -> Mapped:
    # CannyDetector's default thresholds, UniPC, the pipeline's guidance 7.5 (the extension set none).
    params = {"control": _ref(layer, "control_image_layer", ids), "prompt": str(layer.args["prompt"]),
              "low_threshold": 100, "high_threshold": 200, "steps": _int(layer, "num_steps", 1, 150),
              "guidance": 7.5, "scheduler": "unipc"}  # fmt: skip
    return Mapped("controlnet_canny", params, _seed(layer), f"ControlNet canny {layer.key}")


def _sam(layer: Layer, ids: dict[str, str]) -> Mapped:
    return Mapped("segment", {"source": _ref(layer, "image_layer", ids)}, None, f"Segment {layer.key}")


def _upload(layer: Layer, ids: dict[str, str]) -> Mapped:
    return Mapped("upload", {"blob": layer.sha}, None, f"Image {layer.key}")


# The original's op -> how it becomes ours (`mask` is bound separately: to the layer its inpaint reads).
OPS: dict[str, Callable[[Layer, dict[str, str]], Mapped]] = {
    "dream": _dream,
    "mask_and_inpaint": _inpaint,
    "instruct_pix2pix": _pix2pix,
    "controlnet_canny": _canny,
    "sam": _sam,
    "load_image": _upload,
}
UNSUPPORTED = {"controlnet_openpose": "this server has no openpose ControlNet"}


def looks_like_opendream_2023(document: dict[str, Any]) -> bool:
    return bool(document) and all(isinstance(layer, dict) and "op" in layer for layer in document.values())


def _bind(op: str, params: list[Any], options: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the original's function received them (inspect.Signature.bind, defaults applied)."""
    if op not in SIGNATURES:
        return {"params": params, "options": options}
    signature, takes_kwargs = SIGNATURES[op]
    if len(params) > len(signature):
        raise Unsupported(f"{len(params)} positional arguments; {op} takes {len(signature)}")
    bound = {name: value for (name, _), value in zip(signature, params, strict=False)}
    for name, value in options.items():
        if name in bound:
            raise Unsupported(f"{name} is given twice")
        if name in dict(signature) or takes_kwargs:
            bound[name] = value
        else:
            raise Unsupported(f"{op} takes no argument {name!r}")
    for name, default in signature:
        if name not in bound:
            if default is REQUIRED:
                raise Unsupported(f"its required argument {name} is missing")
            bound[name] = default
    return bound


def _image(data_url: Any, where: str, limits: Any) -> bytes:
    """The layer's picture as bytes our blob store takes: PNG, JPEG and WebP as they are, anything else Pillow
    decodes safely (GIF, BMP, TIFF, palette or CMYK pictures) re-encoded as PNG."""
    from PIL import Image, UnidentifiedImageError

    from engine.png import encode_png

    if not isinstance(data_url, str) or not data_url.startswith("data:image/") or ";base64," not in data_url:
        raise InvalidWorkflow("image must be a data:image/...;base64 URL", where)
    try:
        data = base64.b64decode(data_url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidWorkflow("image is not valid base64", where) from None
    max_side = getattr(limits, "max_side", 8192)
    max_pixels = getattr(limits, "max_pixels", 64 * 1024 * 1024)
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=DECODED_FORMATS)
            width, height = image.size
            if width > max_side or height > max_side or width * height > max_pixels or not width or not height:
                raise InvalidWorkflow(f"image is {width}x{height}: too large (or empty) to import", where)
            image.load()
        except InvalidWorkflow:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:  # fmt: skip
            raise InvalidWorkflow(f"image is not readable ({', '.join(DECODED_FORMATS)}): {exc}", where) from None
    if image.format in KEPT_FORMATS and image.mode in KEPT_MODES:
        return data
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return encode_png(image.convert("RGBA" if has_alpha else ("L" if image.mode in ("1", "L", "I;16") else "RGB")))


def convert_opendream_2023(document: dict[str, Any], limits: Any = None) -> dict[str, Any]:
    """Our workflow document for an original Opendream file, with `warnings`: one per layer imported only as
    its picture. Raises InvalidWorkflow, naming the layer, for a layer without a usable picture."""
    from PIL import Image

    images_limits = getattr(limits, "images", None)
    blobs: dict[str, str] = {}
    layers: list[Layer] = []
    for key, raw in document.items():
        where = f"layer {key!r} ({raw.get('op')!r})"
        data = _image(raw.get("image"), where, images_limits)
        sha = hashlib.sha256(data).hexdigest()
        blobs[sha] = base64.b64encode(data).decode()
        size = Image.open(io.BytesIO(data)).size
        metadata = {name: value for name, value in raw.items() if name != "image"}
        layers.append(Layer(str(key), str(raw.get("op")), {}, sha, size, metadata))

    now = time.time()
    events: list[dict[str, Any]] = []
    warnings: list[str] = []

    def add(event_type: str, payload: dict[str, Any]) -> None:
        events.append({"seq": len(events) + 1, "type": event_type, "schema_version": 1, "payload": payload,
                       "actor": SOURCE, "command_id": None, "timestamp": now})  # fmt: skip

    def rendered(layer_id: str, layer: Layer, extra: list[str] | None = None, picture_only: bool = False) -> None:
        fingerprint = {"source": SOURCE, "original": layer.metadata, **({"picture_only": True} if picture_only else {})}
        add("layer.rendered", {"layer_id": layer_id, "revision": 1, "output": layer.sha, "width": layer.size[0],
                               "height": layer.size[1], "fingerprint": fingerprint, "duration_ms": 0.0,
                               "extra_outputs": extra or []})  # fmt: skip

    add("canvas.created", {"name": "Imported from Opendream", "origin": None})

    # Bind every layer's arguments first: a mask is bound to the layer its inpaint reads, which comes later.
    problems: dict[str, str] = {}
    for layer in layers:
        params, options = layer.metadata.get("params") or [], layer.metadata.get("options") or {}
        if not isinstance(params, list) or not isinstance(options, dict):
            problems[layer.key] = "its params are not a list or its options not an object"
            continue
        try:
            layer.args = _bind(layer.op, params, options)
        except Unsupported as exc:
            problems[layer.key] = str(exc)
    mask_reader: dict[str, str] = {}  # mask layer key -> the image layer key its (first) inpaint reads
    for layer in layers:
        if layer.op == "mask_and_inpaint" and layer.key not in problems:
            mask_reader.setdefault(str(layer.args["mask_layer"]), str(layer.args["image_layer"]))

    ids: dict[str, str] = {}
    index = 0
    while index < len(layers):
        layer = layers[index]
        layer_id = f"layer-{layer.key}"
        # sam made several mask layers in one call: the same metadata, one after another.
        run = [layer]
        while (layer.op == "sam" and index + len(run) < len(layers)
               and layers[index + len(run)].metadata == layer.metadata):  # fmt: skip
            run.append(layers[index + len(run)])
        index += len(run)
        picture_only = False
        try:
            if layer.key in problems:
                raise Unsupported(problems[layer.key])
            if layer.op == "mask":
                mapped = _mask(layer, ids, layers, mask_reader)
            elif layer.op in OPS:
                mapped = OPS[layer.op](layer, ids)
            else:
                raise Unsupported(UNSUPPORTED.get(layer.op, f"this server has no operation {layer.op!r}"))
        except Unsupported as exc:
            picture_only = True
            mapped = Mapped("upload", {"blob": layer.sha}, None, f"{layer.op} {layer.key} (picture only)"[:200])
            warnings.append(f"layer {layer.key} ({layer.op}): {exc}; imported as its stored picture, which will "
                            "not be re-rendered")  # fmt: skip
            run = [layer]
            index = layers.index(layer) + 1
        ids[layer.key] = layer_id
        add("layer.added", {"layer_id": layer_id, "operation": mapped.operation, "params": mapped.params,
                            "seed": mapped.seed, "parents": _parents(mapped), "name": mapped.name})  # fmt: skip
        rendered(layer_id, layer, [more.sha for more in run[1:]], picture_only)
        if len(run) > 1:
            from server.render_queue import output_layer_id

            for number, more in enumerate(run[1:], start=1):
                more_id = output_layer_id(layer_id, number)
                ids[more.key] = more_id
                add("layer.added", {"layer_id": more_id, "operation": "layer_output",
                                    "params": {"source": layer_id, "index": number}, "seed": None,
                                    "parents": [layer_id], "name": f"Segment {layer.key} · {number + 1}"})  # fmt: skip
                rendered(more_id, more)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "generator": "opendream 2023 (converted)",
        "canvas": {"id": None, "name": "Imported from Opendream"},
        "events": events,
        "blobs": blobs,
        "warnings": warnings,
    }


@functools.cache
def _builtins() -> Any:
    from engine.builtins import default_registry

    return default_registry()


def _parents(mapped: Mapped) -> list[str]:
    """The layers the params read, in the order the decider lists them."""
    from engine.operation import input_refs

    operation = _builtins().get(mapped.operation)
    assert operation is not None
    return list(dict.fromkeys(input_refs(operation, mapped.params).values()))


def _mask(layer: Layer, ids: dict[str, str], layers: list[Layer], mask_reader: dict[str, str]) -> Mapped:
    """A drawn mask, bound to the layer it was drawn on: the one its inpaint reads; without an inpaint, the
    nearest layer before it of its size."""
    target = mask_reader.get(layer.key)
    if target is None or target not in ids:
        before = [other for other in layers[: layers.index(layer)] if other.op != "mask" and other.key in ids]
        same = [other for other in before if other.size == layer.size]
        target = (same or before)[-1].key if (same or before) else None
    if target is None:
        return Mapped("upload", {"blob": layer.sha}, None, f"Mask {layer.key}")
    return Mapped("mask", {"layer": ids[target], "strokes": [], "blob": layer.sha}, None, f"Mask {layer.key}")
