"""Reading uploaded image blobs inside operations: name checks, integrity, and decoding under explicit limits.

Uploads are checked once by the server when they arrive, but an operation must not trust that: blobs can come
from a replayed workflow or another store. So decoding here states its own limits instead of relying on
Pillow's process-wide `Image.MAX_IMAGE_PIXELS` (which anyone may change, and which only warns below 2x).
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Callable

from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import InvalidBlob, MissingBlob
from engine.image_limits import DECODE_LIMITS, ImageLimits

BlobReader = Callable[[str], bytes]
SHA256 = re.compile(r"[0-9a-f]{64}")


DEFAULT_LIMITS = DECODE_LIMITS  # engine/image_limits.py: the one place image bounds are written


def read_blob(reader: BlobReader | None, sha256: str) -> bytes:
    """The bytes of blob `sha256`, checked against their name. Raises MissingBlob or InvalidBlob."""
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        raise InvalidBlob(f"{sha256!r} is not a sha256 blob name (64 lowercase hex digits)")
    if reader is None:
        raise MissingBlob(
            f"cannot read blob {sha256}: this render has no blob reader (pass blob_reader= to Renderer or render())"
        )
    try:
        data = reader(sha256)
    except (LookupError, FileNotFoundError) as exc:
        raise MissingBlob(f"blob {sha256} does not exist ({exc})") from None
    if data is None:
        raise MissingBlob(f"blob {sha256} does not exist")
    # Renders are cached by the sha256 in their params: bytes that do not match it would poison the cache.
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InvalidBlob(f"blob {sha256}: its bytes do not hash to its name")
    return data


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """Decode an uploaded image fully under `limits`, upright (EXIF orientation applied). Raises InvalidBlob."""
    if len(data) > limits.max_bytes:
        raise InvalidBlob(f"image is {len(data)} bytes; the limit is {limits.max_bytes}")
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; any bomb warning is an error here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(limits.formats))
        except UnidentifiedImageError:
            raise InvalidBlob(f"not an image in an accepted format ({', '.join(limits.formats)})") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidBlob(f"image has too many pixels: {exc}") from None
        width, height = image.size
        # From the header, before a single pixel is decoded.
        if width == 0 or height == 0:
            raise InvalidBlob("image has no pixels")
        if max(width, height) > limits.max_side:
            raise InvalidBlob(f"image is {width}x{height}; the largest side allowed is {limits.max_side}")
        if width * height > limits.max_pixels:
            raise InvalidBlob(f"image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}")
        try:
            image.load()  # truncated files fail here: ImageFile.LOAD_TRUNCATED_IMAGES stays False
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidBlob(f"image data is damaged or truncated: {exc}") from None
    return ImageOps.exif_transpose(image)
