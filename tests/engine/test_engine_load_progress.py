"""Loading progress (engine.models.progress) as a handle loads a model, and the operation defaults that follow
the family within the server's limits (engine.defaults)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from engine.builtins import default_registry
from engine.defaults import apply_family_defaults, family_defaults
from engine.errors import ModelUnavailable
from engine.limits import RenderLimits
from engine.models.families import FAMILIES
from engine.models.loader import ModelHandle, ModelOptions
from engine.models.progress import LoadProgress
from engine.operation import validate_params


def test_progress_counts_steps_and_snapshots_are_whole_under_threads() -> None:
    progress = LoadProgress("m")
    assert progress.snapshot()["state"] == "idle"
    progress.begin("importing")
    progress.start(400)
    seen: list[dict] = []
    workers = [threading.Thread(target=lambda: [progress.step("part") for _ in range(100)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        seen.append(progress.snapshot())
    for worker in workers:
        worker.join()
    assert all(len(snapshot["loaded"]) == snapshot["done"] for snapshot in seen)
    assert progress.snapshot()["done"] == 400 and progress.snapshot()["progress"] == "loading 400/400 components (part)"
    progress.failed("no weights")
    assert progress.snapshot() | {"seconds": None} == {
        "state": "failed", "progress": "failed", "done": 400, "total": 400, "loaded": ["part"] * 400,
        "seconds": None, "error": "no weights",
    }  # fmt: skip
    progress.begin()  # a retry starts over
    assert progress.snapshot()["error"] is None and progress.snapshot()["done"] == 0


def test_a_handle_counts_the_components_of_its_folder(model_options: ModelOptions, tiny_dir: Path) -> None:
    progress = LoadProgress("tiny")
    handle = ModelHandle("builtin:tiny", model_options, progress)
    assert handle.progress is progress
    handle.load()
    index = json.loads((tiny_dir / "model_index.json").read_text())
    components = sorted(name for name, entry in index.items() if isinstance(entry, list) and all(entry))
    snapshot = progress.snapshot()
    assert snapshot["state"] == "ready" and snapshot["error"] is None
    assert sorted(snapshot["loaded"]) == components and snapshot["done"] == snapshot["total"] == len(components)
    assert handle.pipeline("txt2img").unet is handle._ensure_base().unet


def test_a_failed_load_is_reported_and_remembered(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "unet").mkdir(parents=True)
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                          "unet": ["diffusers", "UNet2DConditionModel"]}))  # fmt: skip
    (broken / "unet" / "config.json").write_text("{}")
    handle = ModelHandle(str(broken), ModelOptions(device="cpu"))
    with pytest.raises(ModelUnavailable, match="could not be loaded") as first:
        handle.load()
    assert handle.progress.snapshot()["state"] == "failed"
    assert handle.progress.snapshot()["error"] == str(first.value)
    with pytest.raises(ModelUnavailable) as again:  # not loaded again within resolve_retry_s
        handle.load()
    assert str(again.value) == str(first.value)


@pytest.mark.parametrize(
    ("family", "device", "size", "steps"),
    [("sd1", "cpu", 512, 25), ("sd2-v", "cpu", 768, 25), ("sdxl", "cpu", 1024, 15), ("sdxl", "gpu", 1024, 25)],
)
def test_txt2img_defaults_follow_the_family_within_the_limits(family: str, device: str, size: int, steps: int) -> None:
    native = FAMILIES[family].native_size
    limits = RenderLimits.for_device(device, native)  # type: ignore[arg-type]
    registry = default_registry()
    apply_family_defaults(registry, native, limits)
    operation = registry.get("txt2img")
    assert operation is not None
    decided = validate_params(operation, {"prompt": "a bay"}).params
    assert (decided["width"], decided["height"], decided["steps"]) == (size, size, steps)
    assert limits.check("txt2img", operation.estimate(operation.Params.model_validate(decided), {}, limits)) is None
    schema = operation.describe()["params_schema"]["properties"]
    assert (schema["width"]["default"], schema["steps"]["default"]) == (size, steps)
    assert ("over its limit" in schema["steps"]["description"]) == (steps != 25)


def test_every_generating_default_fits_and_setting_them_again_replaces_them() -> None:
    registry = default_registry()
    limits = RenderLimits.for_device("cpu", 1024)
    apply_family_defaults(registry, 1024, limits)
    for name in registry.names():
        operation = registry.get(name)
        assert operation is not None
        if not operation.uses_seed or "steps" not in operation.Params.model_fields:
            continue
        sizes = {path: (1024, 1024) for path in operation.input_paths()}
        typed = operation.Params.model_construct()
        estimate = operation.estimate(typed, sizes, limits)
        assert estimate is None or limits.check(name, estimate) is None, name
    apply_family_defaults(registry, 512, RenderLimits.for_device("cpu"))
    assert registry.get("txt2img") is registry.registered("txt2img")  # back to the operation as registered
    assert family_defaults(registry.get("crop"), 1024, limits).defaults == {}  # type: ignore[arg-type]
