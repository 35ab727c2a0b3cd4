"""Bounded work, cancellation inside a model block, and live previews, on the real engine (builtin:tiny)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.errors import RenderCancelled
from engine.limits import OverLimit, RenderLimits, WorkEstimate, fit_within
from engine.models.loader import ModelManager, ModelOptions
from engine.preview import Previewer, latents_to_rgb
from engine.render import Renderer

CPU = RenderLimits.for_device("cpu")


@pytest.mark.parametrize("size", [(5000, 3000), (3000, 5000), (4096, 4096), (8000, 64), (513, 512)])
def test_fit_keeps_the_aspect_and_stays_within_the_working_area(size):
    width, height = fit_within(size, 512 * 512)
    assert width * height <= 512 * 512
    assert abs(width / height - size[0] / size[1]) / (size[0] / size[1]) < 0.02 or min(width, height) == 8
    assert fit_within((width, height), 512 * 512) == (width, height)  # applying the rule twice changes nothing


def test_fit_never_enlarges():
    assert fit_within((300, 200), 512 * 512) == (300, 200)


def test_limits_name_the_limit_and_the_setting():
    over_pixels = CPU.check("txt2img", WorkEstimate(2048 * 2048, 10, diffusion=True, size=(2048, 2048)))
    assert over_pixels is not None and "2048x2048" in over_pixels and "max_pixels" in over_pixels
    over_work = CPU.check("txt2img", WorkEstimate(1024 * 1024, 150, diffusion=True, size=(1024, 1024)))
    assert over_work is not None and "150 steps" in over_work and "max_work" in over_work
    over_edit = CPU.check("resize", WorkEstimate(9000 * 9000, size=(9000, 9000)))
    assert over_edit is not None and "max_edit_pixels" in over_edit
    assert CPU.check("txt2img", WorkEstimate(512 * 512, 50, diffusion=True, size=(512, 512))) is None
    gpu = RenderLimits.for_device("gpu", working_side=1024)
    assert gpu.working_pixels == 1024 * 1024 and gpu.max_pixels > CPU.max_pixels and gpu.max_work > CPU.max_work


@pytest.fixture(scope="module")
def bounded(model_options: ModelOptions, tiny_dir: Path) -> Renderer:
    return Renderer(ModelManager("builtin:tiny", model_options), limits=CPU)


def test_a_render_over_the_limit_is_refused_before_the_model_runs(bounded: Renderer):
    with pytest.raises(OverLimit, match="max_work"):
        bounded.render("txt2img", {"prompt": "x", "width": 1024, "height": 1024, "steps": 100}, 1, {})


def test_img2img_fits_a_large_source_into_the_working_size(bounded: Renderer):
    source = Image.new("RGB", (1200, 800), (120, 80, 40))
    result = bounded.render("img2img", {"source": "s", "prompt": "x", "steps": 2}, 1, {"source": source})
    assert result.images[0].size == fit_within((1200, 800), CPU.working_pixels)
    with pytest.raises(OverLimit, match="max_pixels"):
        big = Image.new("RGB", (1600, 1200))
        bounded.render("img2img", {"source": "s", "prompt": "x", "resize": "none"}, 1, {"source": big})


def test_cancel_during_the_vae_decode_stops_inside_it(bounded: Renderer):
    cancel = threading.Event()
    stages: list[str] = []

    def stage(name: str) -> None:
        stages.append(name)
        if name == "decode":
            cancel.set()  # from now on the first decoder block to run stops the render

    with pytest.raises(RenderCancelled):
        bounded.render(
            "txt2img", {"prompt": "x", "width": 256, "height": 256, "steps": 2}, 1, {}, None, cancel.is_set,
            stage=stage,
        )  # fmt: skip
    assert stages == ["prepare", "denoise", "decode"]


def test_cancel_inside_a_denoising_step_stops_before_the_step_ends(bounded: Renderer):
    calls = {"blocks": 0}
    cancel = threading.Event()
    unet = bounded.models.get().load().pipeline("txt2img").unet

    def count(_module, _args):
        calls["blocks"] += 1
        if calls["blocks"] == 2:
            cancel.set()

    handle = unet.down_blocks[0].register_forward_pre_hook(count)
    steps: list[int] = []
    try:
        with pytest.raises(RenderCancelled):
            bounded.render("txt2img", {"prompt": "x", "width": 64, "height": 64, "steps": 5}, 1, {},
                           lambda step, total: steps.append(step), cancel.is_set)  # fmt: skip
    finally:
        handle.remove()
    assert steps == [1]  # the second step's UNet call was cut short: no progress was reported for it


def test_previews_are_throttled_small_and_never_the_last_step():
    sent: list[tuple[int, tuple[int, int]]] = []
    now = [0.0]
    previewer = Previewer(lambda step, total, p: sent.append((step, p.image.size)), clock=lambda: now[0])
    latents = torch.randn(1, 4, 64, 96)
    for step in range(1, 11):
        now[0] += 0.1
        previewer.step(step, 10, latents)
    assert [step for step, _ in sent] == [1, 4, 7]  # every 0.25 s at most, and none at step 10
    assert all(size == (96, 64) for _, size in sent)
    assert latents_to_rgb(torch.zeros(1, 4, 8, 8)).getpixel((0, 0)) == (127, 127, 127)


def test_taesd_previews_come_from_a_real_autoencoder_tiny(model_options: ModelOptions, tiny_dir: Path):
    from dataclasses import replace

    manager = ModelManager("builtin:tiny", replace(model_options, taesd="builtin:tiny-taesd"))
    renderer = Renderer(manager)
    previews = []
    renderer.render("txt2img", {"prompt": "x", "width": 512, "height": 512, "steps": 6}, 1, {},
                    preview=lambda step, total, p: previews.append(p.image))  # fmt: skip
    assert type(manager.get().taesd()).__name__ == "AutoencoderTiny"
    assert previews and all(image.size == (256, 256) for image in previews)  # decoded at 512, sent at 256
