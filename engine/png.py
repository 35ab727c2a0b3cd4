"""Deterministic PNG encoding: the same pixels always give the same bytes (no timestamps, no metadata)."""

from __future__ import annotations

import io

from PIL import Image

_MODES = {"1": "L", "L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "I;16": "I;16"}


def encode_png(image: Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes for `image` with nothing but the pixels in them.

    A fresh image is encoded so no text chunks, ICC profile, gamma or dpi from the source travel along, and
    the zlib level is fixed so the bytes depend only on the pixels (and the zlib build).
    """
    mode = _MODES.get(image.mode, "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    clean = Image.frombytes(mode, image.size, image.convert(mode).tobytes())
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG", optimize=False, compress_level=compress_level)
    return buffer.getvalue()
