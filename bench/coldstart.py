"""Cold start: `opendream serve` from process start to `/api/health` answering, and to the first rendered image
of a 512x512, 20-step txt2img with builtin:tiny.

    .venv/bin/python bench/coldstart.py [--repeats 3] [--size 512] [--steps 20]

Each repeat starts a fresh server process on an empty data directory (no database, no cached model state of
the server's own; the OS file cache stays warm after the first run, as on a machine that has started before).
Times are from just before the process is spawned. The first image is a canvas created over HTTP, one txt2img
layer added, and `GET state` polled until the layer is rendered. Ends with one JSON line of the figures (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server_process import free_port  # noqa: E402


def _wait(predicate: Any, timeout: float, interval: float, what: str, process: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}) while waiting for {what}")
        result = predicate()
        if result is not None:
            return result
        time.sleep(interval)
    raise TimeoutError(f"no {what} within {timeout:.0f}s")


def cold_start_once(size: int, steps: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One fresh server: seconds from spawning it to /api/health, and to the first rendered image."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (Path(tmp) / "server.log").open("wb")
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--data", str(data),
             "--log-level", "warning", "--model", "builtin:tiny", *extra],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:

            def health() -> dict[str, Any] | None:
                try:
                    response = httpx.get(f"{url}/api/health", timeout=1)
                except httpx.TransportError:
                    return None
                return response.json() if response.status_code == 200 else None

            first_health = _wait(health, 120, 0.01, "/api/health", process)
            to_health = time.perf_counter() - started
            token = (data / "admin-token").read_text().strip()
            with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=60) as http:
                canvas = http.post("/api/canvases", json={"name": "cold start"}).json()
                params = {"prompt": "a lighthouse at dusk", "width": size, "height": size, "steps": steps}
                command = {"type": "add_layer", "layer_id": "a", "operation": "txt2img", "seed": 1, "params": params}
                envelope = {"command_id": "c1", "command": command}
                response = http.post(f"/api/canvases/{canvas['id']}/commands", json=envelope)
                response.raise_for_status()
                commanded = time.perf_counter() - started

                ready_at: list[float] = []

                def rendered() -> str | None:
                    if not ready_at and ((health() or {}).get("model") or {}).get("state") == "ready":
                        ready_at.append(time.perf_counter() - started)
                    layers = http.get(f"/api/canvases/{canvas['id']}/state").json()["layers"]
                    status = layers[0]["status"]
                    if status == "failed":
                        raise RuntimeError(f"the first render failed: {layers[0].get('error')}")
                    return status if status == "rendered" else None

                _wait(rendered, 600, 0.02, "first image", process)
                to_image = time.perf_counter() - started
                model = (health() or {}).get("model")
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
    return {
        "serve_to_health_s": round(to_health, 3),
        "serve_to_command_acked_s": round(commanded, 3),
        "serve_to_first_image_s": round(to_image, 3),
        "serve_to_model_ready_s": round(ready_at[0], 3) if ready_at else None,
        "health_model_at_first_answer": (first_health or {}).get("model"),
        "model_after_first_image": model,
    }


def _median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 3) if known else None


def cold_start(repeats: int, size: int = 512, steps: int = 20) -> dict[str, Any]:
    runs = [cold_start_once(size, steps) for _ in range(repeats)]
    for index, run in enumerate(runs, start=1):
        print(f"cold start {index}: /api/health after {run['serve_to_health_s']} s, first {size}x{size} "
              f"{steps}-step image after {run['serve_to_first_image_s']} s")  # fmt: skip
    return {
        "serve_to_health_s": round(statistics.median(run["serve_to_health_s"] for run in runs), 3),
        "serve_to_first_image_s": round(statistics.median(run["serve_to_first_image_s"] for run in runs), 3),
        "serve_to_health_s_all": [run["serve_to_health_s"] for run in runs],
        "serve_to_first_image_s_all": [run["serve_to_first_image_s"] for run in runs],
        "serve_to_model_ready_s": _median_or_none([run["serve_to_model_ready_s"] for run in runs]),
        "serve_to_model_ready_s_all": [run["serve_to_model_ready_s"] for run in runs],
        "first_image_size": size,
        "first_image_steps": steps,
        "health_model_at_first_answer": runs[-1]["health_model_at_first_answer"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(cold_start(args.repeats, args.size, args.steps)))


if __name__ == "__main__":
    main()
