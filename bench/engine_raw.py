"""Engine overhead: Renderer.render vs the same diffusers pipeline called directly, same arguments.

    python bench/engine_raw.py [--size 256] [--steps 4] [--repeats 9] [--model builtin:tiny]

Both paths share one loaded model and are run alternately (so drift in machine speed hits both alike);
the figure is the ratio of medians. The last line printed is JSON: {"engine_over_raw": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer, encode_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--scheduler", default="dpm++")
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args()

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
    print(
        json.dumps(
            {
                "engine_over_raw": round(medians["engine"] / medians["raw"], 4),
                "engine_ms": round(medians["engine"], 1),
                "raw_ms": round(medians["raw"], 1),
                "identical": same,
                "size": args.size,
                "steps": args.steps,
                "repeats": args.repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
