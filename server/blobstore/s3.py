"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph, R2…), shared by every replica and worker.

Objects are named `<prefix><sha256>`; the name is checked before any request is made, and an object is
written only if absent (content-addressed: the same name always holds the same bytes).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from server.blobstore.base import BlobNotFound, check_name


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str = "", client: Any = None, endpoint_url: str | None = None) -> None:
        if client is None:
            import boto3  # optional dependency: pip install "opendream[s3]"

            client = boto3.client("s3", endpoint_url=endpoint_url or os.environ.get("OPENDREAM_S3_ENDPOINT") or None)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """`s3://bucket/prefix/`; credentials and region come from the usual AWS environment."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        prefix = parsed.path.lstrip("/")
        return cls(parsed.netloc, prefix if not prefix or prefix.endswith("/") else prefix + "/")

    def _key(self, sha256: str) -> str:
        return self.prefix + check_name(sha256)

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.exists(sha256):
            self.client.put_object(Bucket=self.bucket, Key=self._key(sha256), Body=data, ContentType="image/png")
        return sha256

    def get(self, sha256: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))
        except self.client.exceptions.NoSuchKey:
            raise BlobNotFound(f"blob {sha256} does not exist") from None
        return response["Body"].read()

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def path(self, sha256: str) -> Path | None:
        check_name(sha256)
        return None  # not on this machine's disk: served from memory
