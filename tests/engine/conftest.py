from __future__ import annotations

import os

# Nothing in these tests may reach the network: every model is built locally and loaded from disk.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def model_options(models_dir: Path) -> ModelOptions:
    return ModelOptions(device="cpu", models_dir=models_dir, hash_cache=models_dir / "hashes.json")


@pytest.fixture(scope="session")
def tiny_dir(model_options: ModelOptions) -> Path:
    """The builtin:tiny folder, built once per test session where the ModelManager would put it."""
    manager = ModelManager("builtin:tiny", model_options)
    return manager.get()._resolve_path()


@pytest.fixture(scope="session")
def manager(model_options: ModelOptions, tiny_dir: Path) -> ModelManager:
    return ModelManager("builtin:tiny", model_options)


@pytest.fixture(scope="session")
def renderer(manager: ModelManager) -> Renderer:
    return Renderer(manager)


@pytest.fixture
def restore_torch_settings() -> Iterator[None]:
    """For tests that switch on reproducible mode: its settings are process-wide."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


_HERE = Path(__file__).parent
_NUMPY_COPY_WARNING = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE not in Path(item.path).parents:
            continue
        # diffusers' schedulers trip a numpy 2 deprecation that is theirs to fix
        item.add_marker(pytest.mark.filterwarnings(_NUMPY_COPY_WARNING))
        if "tiny_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
