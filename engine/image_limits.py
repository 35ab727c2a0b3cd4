"""The bounds on one image, in one place: bytes, pixels, the longer side and the formats accepted.

Two sets of bounds, both documented (docs/security.md): what an upload may be (`UPLOAD_LIMITS`, checked by the
server when it arrives: server/image_checks.py) and what an operation decodes from the blob store
(`DECODE_LIMITS`, engine/blobs.py). They differ only in bytes: the store also holds renders and converted
files, and a 4096 x 4096 render of noise is a PNG of up to ~48 MiB, so the engine reads up to 50 MiB while an
upload is refused past 20 MiB. The pixel and side bounds are the same, so whatever the server accepted the
engine can read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int = 20 * MiB
    max_pixels: int = 4096 * 4096
    max_side: int = 8192
    formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP")


UPLOAD_LIMITS = ImageLimits()
DECODE_LIMITS = replace(UPLOAD_LIMITS, max_bytes=50 * MiB)
