"""Byte counts as people read them, for the messages that refuse something too large ("image is 53.2 MB; the
limit is 50 MB"). The client words its own refusal the same way (client/js/limits.js `formatBytes`).

Units are binary (1 KB = 1024 bytes), as the server's limits are set (engine/image_limits.py `MiB`), but named
KB / MB / GB, the names people know: a 20 MiB limit reads "20 MB", not "20.97 MB".
"""

from __future__ import annotations

UNITS = (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024))


def readable_size(size: int) -> str:
    """`size` bytes in the largest unit it reaches, one decimal at most ("53.2 MB", "20 MB", "900 bytes")."""
    for unit, scale in UNITS:
        if size >= scale:
            value = f"{size / scale:.1f}".removesuffix(".0")
            return f"{value} {unit}"
    return f"{size} byte" if size == 1 else f"{size} bytes"


def over_limit(size: int, limit: int) -> tuple[str, str]:
    """(size, limit) as texts that show the size is over: rounded, a size just over its limit would read
    the same as it ("20 MB; the limit is 20 MB"); then both are given to the byte."""
    size_text, limit_text = readable_size(size), readable_size(limit)
    if size > limit and size_text == limit_text:
        return f"{size:,} bytes", f"{limit_text} ({limit:,} bytes)"
    return size_text, limit_text
