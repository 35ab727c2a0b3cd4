"""Content-addressed blob store: every image is stored once, under the sha256 of its bytes.

Names are checked against the sha256 pattern before they go anywhere near the file system, so a blob name
can never become a path of the caller's choosing.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
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


class LocalBlobStore:
    """Blobs as files under `root/ab/abcdef…`, written atomically and fsynced before they are named."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _file(self, sha256: str) -> Path:
        check_name(sha256)
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self._file(sha256)
        if target.exists():
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str) -> bytes:
        try:
            return self._file(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} does not exist") from None

    def exists(self, sha256: str) -> bool:
        return self._file(sha256).is_file()

    def path(self, sha256: str) -> Path | None:
        target = self._file(sha256)
        return target if target.is_file() else None


def open_blob_store(location: str | None, default_dir: Path) -> BlobStore:
    """`s3://bucket/prefix` for an S3-compatible store shared by several machines; else a local directory."""
    if location and location.startswith("s3://"):
        from server.blobs_s3 import S3BlobStore

        return S3BlobStore.from_url(location)
    return LocalBlobStore(Path(location) if location else default_dir)
