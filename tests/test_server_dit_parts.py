"""GET /api/models over real sockets lists a transformer-only FLUX file (ComfyUI's models/diffusion_models) as usable
with the separate files it will take its parts from (one lacking a part: tests/engine/test_engine_dit_companions.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.relsupport import start_server
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

TRANSFORMER = "diffusion_models/flux-transformer.safetensors"


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.engine.standins_dit import build_dit_stand_in, split_into_companions

    stand_in = build_dit_stand_in(tmp_path_factory.mktemp("built"), "flux")
    root = tmp_path_factory.mktemp("models")
    split_into_companions(stand_in, root)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_root: Path) -> Iterator[ServerProcess]:
    process = start_server(tmp_path_factory.mktemp("data"), env={"OPENDREAM_MODELS": str(models_root)})
    yield process
    process.stop()


def test_a_transformer_alone_is_listed_with_its_parts(server: ServerProcess, models_root: Path) -> None:
    with server.client() as client:
        response = client.get("/api/models")
    assert str(models_root) not in response.text  # an open route: no server paths
    listed = {entry["name"]: entry for entry in response.json()["models"]}
    entry = listed[TRANSFORMER]
    assert entry["usable"] and entry["family"] == "flux", entry["problem"]
    assert entry["parts"] == {"vae": "vae/ae.safetensors", "clip_l": "text_encoders/clip_l.safetensors",
                              "t5xxl": "text_encoders/t5xxl_fp16.safetensors"}  # fmt: skip
