"""The blob store: content-addressed images, on local disk (`local`) or in an S3-compatible bucket (`s3`).

`open_blob_store(location, default_dir)` picks one from the configuration; both satisfy `BlobStore`
(`base`, which also checks names).
"""

from __future__ import annotations

from pathlib import Path

from server.blobstore.base import SHA256, BlobNotFound, BlobStore, InvalidBlobName, check_name
from server.blobstore.local import LocalBlobStore

__all__ = ["SHA256", "BlobNotFound", "BlobStore", "InvalidBlobName", "LocalBlobStore", "check_name",
           "open_blob_store"]  # fmt: skip


def open_blob_store(location: str | None, default_dir: Path) -> BlobStore:
    """`s3://bucket/prefix` for an S3-compatible store shared by several machines; else a local directory."""
    if location and location.startswith("s3://"):
        from server.blobstore.s3 import S3BlobStore

        return S3BlobStore.from_url(location)
    return LocalBlobStore(Path(location) if location else default_dir)
