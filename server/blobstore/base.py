"""What every blob store is: content-addressed (each image stored once, under the sha256 of its bytes), and
the check that a name is a sha256 before it goes anywhere near a file system or a bucket."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobNotFound(LookupError):
    pass


class InvalidBlobName(ValueError):
    pass


def check_name(sha256: str) -> str:
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        raise InvalidBlobName(f"{sha256!r} is not a sha256 blob name (64 lowercase hex digits)")
    return sha256


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store `data` (if new) and return its sha256."""

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...

    def path(self, sha256: str) -> Path | None:
        """A local file holding the blob, where the store has one (for zero-copy responses)."""
