"""Checking uploaded images before they are stored: format, size, pixel count, complete decoding, under
`ImageLimits` (engine/image_limits.py: the one definition; an upload's bounds are UPLOAD_LIMITS)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from engine.image_limits import ImageLimits
from server.sizes import over_limit

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str
    media_type: str
    width: int
    height: int
    mode: str


class InvalidImage(ValueError):
    pass


def inspect_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Decode `data` fully under `limits`; raise InvalidImage naming what is wrong."""
    if len(data) > limits.max_bytes:
        size, limit = over_limit(len(data), limits.max_bytes)
        raise InvalidImage(f"image is {size}; the limit is {limit}")
    if not data:
        raise InvalidImage("image is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(_without_png_text(data)), formats=[f for f in limits.formats if f in
                                                                             ALLOWED_FORMATS])  # fmt: skip
        except UnidentifiedImageError:
            raise InvalidImage(f"not an image in an accepted format ({', '.join(limits.formats)})") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImage(f"image has too many pixels: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:  # a header Pillow cannot make sense of
            raise InvalidImage(f"image header is damaged: {exc}") from None
        width, height = image.size
        # Checked from the header, before any pixel is decoded.
        if width > limits.max_side or height > limits.max_side:
            raise InvalidImage(f"image is {width}x{height}; the largest side allowed is {limits.max_side}")
        if width * height > limits.max_pixels:
            raise InvalidImage(
                f"image is {width}x{height} = {width * height:,} pixels; the limit is {limits.max_pixels:,}"
            )
        if width == 0 or height == 0:
            raise InvalidImage("image has no pixels")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidImage(f"image data is damaged or truncated: {exc}") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImage(f"image has too many pixels: {exc}") from None
    assert image.format is not None
    return ImageInfo(image.format, ALLOWED_FORMATS[image.format], width, height, image.mode)


def _without_png_text(data: bytes) -> bytes:
    """A PNG without its text chunks; other formats unchanged. The pixels are what is inspected, and Pillow
    decompresses text chunks as it opens a file: a zTXt chunk can be a zip bomb of its own (Pillow then raises
    ValueError), and a PNG carrying a large workflow is over Pillow's 1 MB text limit although it is fine."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    kept = [PNG_SIGNATURE]
    at = len(PNG_SIGNATURE)
    while at + 8 <= len(data):
        end = at + 12 + int.from_bytes(data[at : at + 4], "big")  # length, type, data, crc
        if data[at + 4 : at + 8] not in PNG_TEXT_CHUNKS:
            kept.append(data[at:end])
        at = end
    kept.append(data[at:])  # whatever is left of a truncated file: Pillow reports it
    return b"".join(kept)


def configure_pillow(limits: ImageLimits) -> None:
    """Pillow's own bomb check and truncation policy, set explicitly rather than left at their defaults (or at
    whatever an imported library set them to)."""
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def describe_limits(limits: ImageLimits) -> dict[str, object]:
    """The upload bounds as GET /api/operations states them (`limits.upload`), so the client refuses a file
    over them before sending it (client/js/limits.js `uploadProblem`)."""
    return {
        "max_bytes": limits.max_bytes,
        "max_pixels": limits.max_pixels,
        "max_side": limits.max_side,
        "media_types": [ALLOWED_FORMATS[f] for f in limits.formats if f in ALLOWED_FORMATS],
    }
