"""Fixtures for the editing operations and extensions: no diffusion model anywhere.

The renderer points at a model folder that does not exist, so any test that loads or hashes the diffusion
model fails loudly: the editing operations must never touch it.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer


class Blobs(dict[str, bytes]):
    """A content-addressed blob store in memory; `get` raises KeyError for unknown blobs, like the server's."""

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        self[sha256] = data
        return sha256

    def put_image(self, image: Image.Image, format: str = "PNG", **options: object) -> str:
        buffer = io.BytesIO()
        image.save(buffer, format=format, **options)
        return self.put(buffer.getvalue())

    def get(self, sha256: str) -> bytes:  # type: ignore[override]
        return self[sha256]


@pytest.fixture
def blobs() -> Blobs:
    return Blobs()


@pytest.fixture(scope="session")
def missing_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-model") / "does-not-exist"


@pytest.fixture
def renderer(missing_model: Path, blobs: Blobs) -> Renderer:
    options = ModelOptions(device="cpu", models_dir=missing_model, hash_cache=missing_model / "hashes.json")
    return Renderer(ModelManager(str(missing_model), options), blob_reader=blobs.get)
