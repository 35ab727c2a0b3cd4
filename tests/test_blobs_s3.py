"""The S3 blob store against a local S3-compatible server (moto's), over real HTTP."""

from __future__ import annotations

import io

import boto3
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from server.blobstore import BlobNotFound, InvalidBlobName, open_blob_store
from server.blobstore.s3 import S3BlobStore
from tests.server_process import free_port


@pytest.fixture(scope="module")
def endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(endpoint, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                        "OPENDREAM_S3_ENDPOINT": endpoint}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="opendream")
    return open_blob_store("s3://opendream/blobs/", None)  # type: ignore[arg-type]


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, "PNG")
    return buffer.getvalue()


def test_blobs_round_trip_through_s3(s3):
    assert isinstance(s3, S3BlobStore) and s3.prefix == "blobs/"
    sha = s3.put(png())
    assert s3.exists(sha) and s3.get(sha) == png() and s3.put(png()) == sha
    assert s3.path(sha) is None
    keys = [item["Key"] for item in s3.client.list_objects_v2(Bucket="opendream")["Contents"]]
    assert keys == [f"blobs/{sha}"]
    with pytest.raises(BlobNotFound):
        s3.get("0" * 64)
    assert not s3.exists("0" * 64)
    for bad in ("../../etc/passwd", "A" * 64, ""):
        with pytest.raises(InvalidBlobName):
            s3.get(bad)


def test_a_bad_s3_url_is_refused():
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        S3BlobStore.from_url("s3:///nobucket")
