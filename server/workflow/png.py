"""Workflows inside PNGs: embedded in a compressed iTXt chunk, and read back out."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping
from typing import Any

import orjson

from server.config import WorkflowLimits
from server.image_checks import InvalidImage, inspect_image
from server.workflow.format import PNG_KEY, InvalidWorkflow


def embed_in_png(png: bytes, workflow: Mapping[str, Any]) -> bytes:
    """The same picture with the workflow in a compressed iTXt chunk (as ComfyUI and A1111 carry theirs)."""
    from PIL import Image, PngImagePlugin

    image = Image.open(io.BytesIO(png))
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEY, orjson.dumps(workflow).decode(), zip=True)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def extract_from_png(data: bytes, limits: WorkflowLimits) -> dict[str, Any]:
    from PIL import Image, PngImagePlugin, UnidentifiedImageError

    from engine.png import encode_png

    try:
        inspect_image(data, limits.images)
    except InvalidImage as exc:
        raise InvalidWorkflow(f"not a usable PNG: {exc}") from None
    previous = PngImagePlugin.MAX_TEXT_CHUNK
    PngImagePlugin.MAX_TEXT_CHUNK = limits.max_bytes  # our chunk can be larger than Pillow's 1 MB default
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidWorkflow(f"not a usable PNG: {exc}") from None
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK = previous
    text = getattr(image, "text", {}).get(PNG_KEY)
    if text is None:
        raise InvalidWorkflow(f"this PNG carries no Opendream workflow (no {PNG_KEY!r} text chunk)")
    try:
        document = orjson.loads(str(text))  # Pillow hands iTXt back as a str subclass
    except orjson.JSONDecodeError as exc:
        raise InvalidWorkflow(f"the PNG's workflow is not JSON: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("blobs"), dict):
        # The picture itself is a render the workflow names: give it back its image.
        pixels = encode_png(image)
        document["blobs"].setdefault(hashlib.sha256(pixels).hexdigest(), base64.b64encode(pixels).decode())
    return document
