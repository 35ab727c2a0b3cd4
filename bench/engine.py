"""Engine benchmark, in one run:

1. overhead: Renderer.render vs the same diffusers pipeline called directly with the same arguments (run
   alternately on one loaded model, so drift in machine speed hits both alike; ratio of medians), and the
   whole materialisation path (render queue → PNG → blob store → `layer.rendered` committed) per layer;
2. the render cache: a 20-layer canvas rendered cold, then the same canvas again (same operations, params,
   seeds, inputs) where every layer is a cache hit;
3. cancellation: renders at --cancel-size (512²) cancelled at evenly spread moments of their run (text
   encoding, every step, the VAE decode); the time from the cancel to the render having stopped (the worker
   free), p50 and p99;
4. live previews: the same render with previews on and off, alternately (ratio of medians), with the linear
   latent preview and with a (tiny) TAESD.

    .venv/bin/python bench/engine.py [--size 256] [--steps 20] [--repeats 9] [--model builtin:tiny]
                                     [--only overhead,cache,cancel,previews]

A full-size model with random weights (the shapes decide the speed) is made by bench/fullsize.py.

The last line printed is JSON: {"engine_over_raw", "cached_over_cold", "cancel_p50_ms", "cancel_p99_ms",
"preview_over_plain", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from engine.builtins import default_registry
from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer, encode_png
from server.config import Settings
from server.core.commands import AddLayer
from server.render_queue import RenderQueue
from server.service import CanvasService
from server.services import open_services


def canvas_commands(size: int, steps: int, layers: int = 20) -> list[AddLayer]:
    """A plausible canvas: generated layers, each followed by a few img2img edits of it."""
    commands: list[AddLayer] = []
    for index in range(layers):
        if index % 4 == 0:
            params = {"prompt": f"a harbour, variation {index}", "width": size, "height": size, "steps": steps}
            commands.append(AddLayer(layer_id=f"l{index}", operation="txt2img", params=params, seed=index))
        else:
            params = {"source": f"l{index - 1}", "prompt": f"edit {index}", "strength": 0.6, "steps": steps}
            commands.append(AddLayer(layer_id=f"l{index}", operation="img2img", params=params, seed=index))
    return commands


async def render_canvas(service: CanvasService, queue: RenderQueue, commands: list[AddLayer]) -> tuple[float, float]:
    """Wall time from the first command to the last layer recorded, and the time spent inside the renderer."""
    started = time.perf_counter()
    canvas_id = (await service.create_canvas("bench", "bench")).canvas_id
    for command in commands:
        await service.execute(canvas_id, command, "bench")
    await queue.wait_idle(timeout=3600)
    elapsed = time.perf_counter() - started
    state = await service.state(canvas_id)
    assert all(layer.status == "rendered" for layer in state.layers.values()), "every layer must render"
    return elapsed, sum(layer.output.duration_ms for layer in state.layers.values()) / 1000


async def cache_figures(renderer: Renderer, size: int, steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        # wired by the composition root, as the server is, rendering with the renderer already loaded here
        services = await open_services(Settings(data_dir=Path(tmp)), default_registry(), renderer=lambda: renderer)
        service, queue = services.canvases, services.renders
        assert queue is not None
        try:
            commands = canvas_commands(size, steps)
            cold, rendering = await render_canvas(service, queue, commands)
            computed = queue.stats["computed"]
            cached, _ = await render_canvas(service, queue, commands)
            assert queue.stats["computed"] == computed, "the cached canvas must compute nothing"
        finally:
            await services.close()
    return {
        "cold_s_20_layers": round(cold, 3),
        "cached_s_20_layers": round(cached, 4),
        "cached_over_cold": round(cached / cold, 5),
        # Everything around the renderer (queue, PNG, blob, commit) relative to the rendering itself.
        "materialise_over_render": round(cold / rendering, 4),
        "materialise_overhead_ms_per_layer": round((cold - rendering) * 1000 / len(commands), 1),
    }


def cancel_figures(renderer: Renderer, size: int, steps: int, trials: int) -> dict[str, float]:
    """Cancel renders at evenly spread moments of a whole run; how long each took to stop after the cancel."""
    from engine.errors import RenderCancelled

    params = {"prompt": "a harbour at dusk", "width": size, "height": size, "steps": steps}
    started = time.perf_counter()
    renderer.render("txt2img", params, 1, {})
    whole = time.perf_counter() - started
    latencies: list[float] = []
    for trial in range(trials):
        cancel = threading.Event()
        at = whole * (trial + 0.5) / trials
        cancelled_at: list[float] = []

        def fire(at: float = at, cancel: threading.Event = cancel, cancelled_at: list[float] = cancelled_at) -> None:
            time.sleep(at)
            cancelled_at.append(time.perf_counter())
            cancel.set()

        timer = threading.Thread(target=fire)
        timer.start()
        try:
            renderer.render("txt2img", params, 2 + trial, {}, cancelled=cancel.is_set)
        except RenderCancelled:
            latencies.append((time.perf_counter() - cancelled_at[0]) * 1000.0)
        timer.join()
    latencies.sort()
    return {
        "cancel_p50_ms": round(statistics.median(latencies), 1),
        "cancel_p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "cancel_max_ms": round(latencies[-1], 1),
        "cancel_trials": len(latencies),
        "cancel_finished_first": trials - len(latencies),  # cancelled so late that the render had ended
        "cancel_render_s": round(whole, 3),
        "cancel_size": size,
    }


def preview_figures(renderer: Renderer, size: int, steps: int, repeats: int) -> dict[str, float]:
    """Render time with live previews on (linear, then TAESD) over the same render with them off."""
    params = {"prompt": "a harbour at dusk", "width": size, "height": size, "steps": steps}
    sent: list[int] = []

    def keep(step: int, total: int, picture: Any) -> None:
        picture.jpeg_data_url()  # what the server does with each: encoded for the wire
        sent.append(step)

    def plain() -> None:
        renderer.render("txt2img", params, 7, {})

    def previewed() -> None:
        renderer.render("txt2img", params, 7, {}, preview=keep)

    figures: dict[str, float] = {}
    for label, count, taesd in (
        ("preview_over_plain", "previews_per_render", None),
        ("preview_taesd_over_plain", "taesd_previews_per_render", "builtin:tiny-taesd"),
    ):
        handle = renderer.models.get()
        handle.options = replace(handle.options, taesd=taesd)
        handle._taesd = None
        previewed()  # warm-up (and TAESD's load)
        times: dict[str, list[float]] = {"plain": [], "previewed": []}
        sent.clear()
        for _ in range(repeats):
            for name, fn in (("plain", plain), ("previewed", previewed)):
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
        figures[label] = round(statistics.median(times["previewed"]) / statistics.median(times["plain"]), 4)
        figures[count] = round(len(sent) / repeats, 1)
    return figures


SECTIONS = ("overhead", "cache", "cancel", "previews")  # the overhead runs always: it loads and warms the model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--scheduler", default="dpm++")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--cancel-size", type=int, default=512)
    parser.add_argument("--cancel-steps", type=int, default=25)
    parser.add_argument("--cancel-trials", type=int, default=20)
    parser.add_argument("--only", help=f"some of the sections, comma-separated: {','.join(SECTIONS)} (default all;"
                        " a full-size model on a CPU takes minutes a section)")  # fmt: skip
    args = parser.parse_args()
    only = set(SECTIONS if args.only is None else args.only.split(","))
    if not only <= set(SECTIONS):
        parser.error(f"--only takes {', '.join(SECTIONS)}")

    manager = ModelManager(args.model, ModelOptions(models_dir=args.models_dir))
    renderer = Renderer(manager)
    handle = manager.get().load()
    params: dict[str, Any] = {
        "prompt": "a photo of a red cat",
        "width": args.size,
        "height": args.size,
        "steps": args.steps,
        "guidance": 7.5,
        "scheduler": args.scheduler,
    }
    seed = 1234
    raw_pipe = handle.pipeline("txt2img", args.scheduler)

    def engine() -> Any:
        return renderer.render("txt2img", params, seed, {}).images[0]

    def raw() -> Any:
        return raw_pipe(
            prompt=params["prompt"],
            width=args.size,
            height=args.size,
            num_inference_steps=args.steps,
            guidance_scale=params["guidance"],
            generator=torch.Generator("cpu").manual_seed(seed),
        ).images[0]

    same = encode_png(engine()) == encode_png(raw())  # also the warm-up of both paths
    times: dict[str, list[float]] = {"engine": [], "raw": []}
    for _ in range(args.repeats):
        for name, fn in (("engine", engine), ("raw", raw)):
            started = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - started) * 1000.0)

    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:>6}: median {medians[name]:7.1f} ms  min {min(values):7.1f}  max {max(values):7.1f}")
    print(f"identical pixels: {same}; threads {torch.get_num_threads()}; {args.size}px, {args.steps} steps")

    cache: dict[str, Any] = {}
    if "cache" in only:
        cache = asyncio.run(cache_figures(renderer, args.size, args.steps))
        print(f"20-layer canvas: cold {cache['cold_s_20_layers']} s, all cached {cache['cached_s_20_layers']} s; "
              f"{cache['materialise_overhead_ms_per_layer']} ms per layer around the renderer")  # fmt: skip
    cancel: dict[str, Any] = {}
    if "cancel" in only:
        cancel = cancel_figures(renderer, args.cancel_size, args.cancel_steps, args.cancel_trials)
        print(f"cancel at {args.cancel_size}px: p50 {cancel['cancel_p50_ms']} ms, p99 {cancel['cancel_p99_ms']} ms "
              f"over {cancel['cancel_trials']} renders of {cancel['cancel_render_s']} s")  # fmt: skip
    previews: dict[str, Any] = {}
    if "previews" in only:
        previews = preview_figures(renderer, args.cancel_size, args.cancel_steps, max(3, args.repeats // 2))
        print(f"previews: linear x{previews['preview_over_plain']}, TAESD x{previews['preview_taesd_over_plain']}")
    print(
        json.dumps(
            {
                "engine_over_raw": round(medians["engine"] / medians["raw"], 4),
                **({"cached_over_cold": cache["cached_over_cold"]} if cache else {}),
                "engine_ms": round(medians["engine"], 1),
                "raw_ms": round(medians["raw"], 1),
                **cache,
                **cancel,
                **previews,
                "identical": same,
                "device": str(handle.device),
                "dtype": str(handle.dtype).removeprefix("torch."),
                "model": args.model,
                "size": args.size,
                "steps": args.steps,
                "repeats": args.repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
