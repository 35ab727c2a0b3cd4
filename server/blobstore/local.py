"""Blobs as files on this machine's disk.

Names are checked against the sha256 pattern before they go anywhere near the file system, so a blob name
can never become a path of the caller's choosing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from server.blobstore.base import BlobNotFound, check_name


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
