from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from engine.errors import RenderCancelled
from engine.models.loader import ModelManager
from engine.render import Renderer, ReproducibleMode, encode_png

PARAMS = {"prompt": "a photo of a red cat", "width": 96, "height": 64, "steps": 3, "scheduler": "euler_a"}


def png_sha(image: Image.Image) -> str:
    return hashlib.sha256(encode_png(image)).hexdigest()


def test_same_seed_same_bytes_different_seed_different(renderer: Renderer) -> None:
    first = renderer.render("txt2img", PARAMS, 1234, {}).images[0]
    again = renderer.render("txt2img", PARAMS, 1234, {}).images[0]
    other = renderer.render("txt2img", PARAMS, 1235, {}).images[0]
    assert encode_png(first) == encode_png(again)
    assert encode_png(first) != encode_png(other)


def test_seed_is_chosen_and_reported_when_missing(renderer: Renderer) -> None:
    result = renderer.render("txt2img", PARAMS, None, {})
    assert isinstance(result.seed, int)
    replay = renderer.render("txt2img", PARAMS, result.seed, {})
    assert encode_png(result.images[0]) == encode_png(replay.images[0])


def test_global_rng_does_not_matter(renderer: Renderer) -> None:
    torch.manual_seed(1)
    first = renderer.render("txt2img", PARAMS, 7, {}).images[0]
    torch.manual_seed(2)
    torch.rand(10)
    second = renderer.render("txt2img", PARAMS, 7, {}).images[0]
    assert first.tobytes() == second.tobytes()


SCRIPT = """
import hashlib, json, sys
from pathlib import Path
from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer, encode_png

models_dir = Path(sys.argv[1])
params = json.loads(sys.argv[2])
renderer = Renderer(ModelManager("builtin:tiny", ModelOptions(device="cpu", models_dir=models_dir,
                                                              hash_cache=models_dir / "hashes.json")))
out = {}
for seed in (1234, 99):
    result = renderer.render("txt2img", params, seed, {})
    out[seed] = hashlib.sha256(encode_png(result.images[0])).hexdigest()
print(json.dumps({"hashes": out, "fingerprint": result.fingerprint}))
"""


def test_bit_identical_in_a_separate_process(renderer: Renderer, models_dir: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(models_dir), json.dumps(PARAMS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    for seed in (1234, 99):
        assert child["hashes"][str(seed)] == png_sha(renderer.render("txt2img", PARAMS, seed, {}).images[0])
    assert child["fingerprint"] == renderer.fingerprint()


def test_cancel_between_steps(renderer: Renderer) -> None:
    steps: list[int] = []
    params = {**PARAMS, "steps": 6}
    with pytest.raises(RenderCancelled):
        renderer.render(
            "txt2img", params, 1, {}, progress=lambda step, total: steps.append(step), cancelled=lambda: len(steps) >= 2
        )
    assert steps == [1, 2]
    # nothing left behind: the next render is unaffected
    after = renderer.render("txt2img", PARAMS, 1234, {}).images[0]
    assert after.tobytes() == renderer.render("txt2img", PARAMS, 1234, {}).images[0].tobytes()


def test_cancel_before_start(renderer: Renderer) -> None:
    calls: list[int] = []
    with pytest.raises(RenderCancelled):
        renderer.render("txt2img", PARAMS, 1, {}, progress=lambda s, t: calls.append(s), cancelled=lambda: True)
    assert calls == []


def test_cancel_from_another_thread(renderer: Renderer) -> None:
    flag = threading.Event()
    started = threading.Event()

    def progress(step: int, total: int) -> None:
        started.set()
        flag.wait(5)  # hold the render at step 1 until the other thread has cancelled

    errors: list[BaseException] = []

    def work() -> None:
        try:
            renderer.render("txt2img", {**PARAMS, "steps": 5}, 1, {}, progress=progress, cancelled=flag.is_set)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(30)
    flag.set()
    worker.join(30)
    assert len(errors) == 1 and isinstance(errors[0], RenderCancelled)


def test_encode_png_is_deterministic_and_bare() -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "something else")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    loaded = Image.open(io.BytesIO(buffer.getvalue()))
    assert encode_png(image) == encode_png(Image.fromarray(pixels.copy())) == encode_png(loaded)
    assert b"tEXt" not in encode_png(loaded) and b"tIME" not in encode_png(loaded)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert np.array_equal(np.asarray(decoded), pixels)
    rgba = Image.new("RGBA", (4, 4), (1, 2, 3, 4))
    assert Image.open(io.BytesIO(encode_png(rgba))).mode == "RGBA"


@pytest.mark.usefixtures("restore_torch_settings")
def test_reproducible_mode_pins_threads(manager: ModelManager) -> None:
    renderer = Renderer(manager, reproducible=ReproducibleMode(threads=1))
    result = renderer.render("txt2img", PARAMS, 5, {})
    assert torch.get_num_threads() == 1
    assert result.fingerprint["threads"] == 1
    assert result.fingerprint["reproducible"] == {
        "threads": 1,
        "deterministic_algorithms": True,
        "cpu_capability": None,
    }
    assert encode_png(result.images[0]) == encode_png(renderer.render("txt2img", PARAMS, 5, {}).images[0])


def test_reproducible_mode_refuses_another_cpu_capability(manager: ModelManager) -> None:
    other = "AVX2" if torch.backends.cpu.get_cpu_capability() != "AVX2" else "AVX512"
    with pytest.raises(RuntimeError, match="ATEN_CPU_CAPABILITY"):
        Renderer(manager, reproducible=ReproducibleMode(threads=torch.get_num_threads(), cpu_capability=other))
