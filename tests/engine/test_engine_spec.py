from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.models.spec import InvalidModelSpec, ModelSpec, parse_model_spec
from engine.schedulers import SCHEDULER_NAMES, make_scheduler


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("builtin:tiny", ModelSpec("builtin", "tiny")),
        ("runwayml/stable-diffusion-v1-5", ModelSpec("hub", "runwayml/stable-diffusion-v1-5")),
        ("hub:someone/model", ModelSpec("hub", "someone/model")),
        ("/models/sd15", ModelSpec("folder", "/models/sd15")),
        ("./sd15", ModelSpec("folder", "sd15")),
        ("/models/v1-5-pruned.safetensors", ModelSpec("single_file", "/models/v1-5-pruned.safetensors")),
        ("model.ckpt", ModelSpec("single_file", "model.ckpt")),
        ("file:/m/x", ModelSpec("single_file", "/m/x")),
    ],
)
def test_parse_model_spec(text: str, expected: ModelSpec) -> None:
    assert parse_model_spec(text) == expected


def test_existing_folder_without_slash_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert parse_model_spec("owner/name").kind == "folder"


@pytest.mark.parametrize("text", ["", "builtin:huge", "not a model", "a/b/c"])
def test_invalid_model_spec(text: str) -> None:
    with pytest.raises(InvalidModelSpec):
        parse_model_spec(text)


def test_spec_round_trips_through_str() -> None:
    for text in ["builtin:tiny", "owner/model", "/models/sd15"]:
        assert str(parse_model_spec(text)) == text


def test_scheduler_names_all_resolve(tiny_dir: Path) -> None:
    from diffusers import DDIMScheduler

    config = DDIMScheduler.load_config(tiny_dir / "scheduler")
    classes = {name: type(make_scheduler(name, config)).__name__ for name in SCHEDULER_NAMES}
    assert classes["euler_a"] == "EulerAncestralDiscreteScheduler"
    assert classes["dpm++"] == "DPMSolverMultistepScheduler"
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("nope", config)


def test_light_modules_do_not_import_torch() -> None:
    code = (
        "import sys, engine.builtins, engine.operation, engine.models.spec, engine.errors, engine.png;"
        "engine.builtins.default_registry();"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
