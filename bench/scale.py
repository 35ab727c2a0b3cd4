"""Scale curves: how the server's costs grow with a canvas's live layers and with its log's length.

    .venv/bin/python bench/scale.py [--quick] [--layers 10,100,1000,5000] [--events 1000,10000,100000]
                                    [--layers-log 10000] [--events-layers 100] [--no-coldstart] [--plot PATH]

Two sweeps over canvases built for the purpose: live layers (10 ... 5,000) at a fixed log length, and log
length (1k ... 100k events) at a fixed number of live layers. Each canvas's log is written through the service's
import path (numbered, folded, snapshotted every 500 events exactly as appends would be) into the data directory
of a real `opendream serve` process, started afterwards; every figure is then taken over real sockets:
- command latency: `POST .../commands` (set_opacity on a random layer, one at a time), p50/p99;
- `GET .../state`: latency (median) and bytes;
- the WebSocket `welcome`: for a new client (hello without `since`: the whole state) and for a client 5,000
  events behind (`since`: the events it missed), time from hello to welcome, and bytes;
- the client's own fold of the whole log in Node (client/js/state.js `applyEvents`, events from `GET .../events`),
  checked against `GET .../state`;
- memory per cached canvas: the bytes Python allocates for the projected state the service keeps in its cache
  (tracemalloc, in this process, with the server's own code).
And the cold start (bench/coldstart.py): `opendream serve` to `/api/health`, and to the first 512x512 image.
Ends with one JSON line of the figures; `--plot` also draws them (matplotlib, when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from engine.builtins import default_registry  # noqa: E402
from engine.operation import validate_params  # noqa: E402
from server.config import Settings  # noqa: E402
from server.core.decide import Decider  # noqa: E402
from server.core.events import (  # noqa: E402
    CanvasCreated,
    EventData,
    LayerAdded,
    LayerMoved,
    LayerOpacityChanged,
    LayerRenamed,
    LayerRendered,
    LayerVisibilityChanged,
)
from server.service import CanvasService, RecordedEvent  # noqa: E402
from server.services import open_services  # noqa: E402
from server.store.sql import SQLEventStore, sqlite_url  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

BEHIND = 5000  # a reconnecting client this many events behind gets the events, not the state (protocol.md)
FINGERPRINT = {"model": "builtin:tiny", "device": "cpu", "dtype": "float32", "scheduler": "euler_a"}


def build_log(layers: int, events: int, seed: int) -> list[RecordedEvent]:
    """A canvas reaching `layers` live layers, each rendered once, then ordinary edits up to `events` events
    (at least 2 x layers + 1: every layer rendered, so that the server has nothing to render while measured)."""
    events = max(events, 2 * layers + 1)
    rng = random.Random(seed)
    txt2img = default_registry().get("txt2img")
    assert txt2img is not None
    params = validate_params(txt2img, {"prompt": "x", "width": 512, "height": 512}).params  # canonical, full size
    now = time.time()
    log: list[EventData] = [CanvasCreated(name=f"scale {layers} layers")]
    for index in range(min(layers, events - 1)):
        log.append(LayerAdded(f"l{index}", "txt2img", {**params, "prompt": f"layer {index}: a quiet harbour"},
                              index, (), f"Text to image {index + 1}"))  # fmt: skip
    live = [f"l{index}" for index in range(len(log) - 1)]
    for layer_id in live:
        if len(log) >= events:
            break
        log.append(LayerRendered(layer_id, 1, f"{rng.getrandbits(256):064x}", 512, 512, FINGERPRINT, 812.5,
                                 f"{rng.getrandbits(256):064x}"))  # fmt: skip
    while len(log) < events:
        layer_id = rng.choice(live)
        roll = rng.random()
        if roll < 0.45:
            log.append(LayerOpacityChanged(layer_id, round(rng.random(), 3)))
        elif roll < 0.7:
            log.append(LayerRenamed(layer_id, f"name {rng.randrange(10**6)}"))
        elif roll < 0.9:
            log.append(LayerVisibilityChanged(layer_id, rng.random() < 0.5))
        else:
            log.append(LayerMoved(layer_id, rng.randrange(len(live))))
    actors = [f"user{n}" for n in range(4)]
    return [RecordedEvent(data, rng.choice(actors), f"cmd-{seq}", now) for seq, data in enumerate(log, start=1)]


async def build_canvases(data_dir: Path, shapes: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """Write each canvas's log into the server's database, through the service's import path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # wired by the composition root, as the server that reads them is (server/services.py)
    services = await open_services(Settings(data_dir=data_dir), default_registry(), role="tool")
    service = services.canvases
    ids: dict[tuple[int, int], str] = {}
    try:
        for layers, events in shapes:
            started = time.perf_counter()
            result = await service.import_log(build_log(layers, events, seed=layers * 7 + events))
            ids[(layers, events)] = result.canvas_id
            print(f"  built {layers:>5} layers / {events:>6} events in {time.perf_counter() - started:.1f} s")
    finally:
        await services.close()
    return ids


def memory_per_canvas(data_dir: Path, canvas_id: str) -> int:
    """Bytes allocated for a canvas's latest state as the service projects and caches it (snapshot + folds)."""
    store = SQLEventStore(sqlite_url(data_dir / "opendream.db"))
    service = CanvasService(store, Decider(default_registry()))
    head = store.head(canvas_id)
    assert head is not None
    service.project_at(canvas_id, head)  # warm: imports, caches of the driver and pydantic
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = service.project_at(canvas_id, head)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del state
    store.close()
    return size


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def welcome(server: ServerProcess, canvas_id: str, since: int | None) -> tuple[float, int, dict[str, Any]]:
    """Seconds from sending hello to having the whole welcome, its bytes, and the welcome."""
    async with connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}", max_size=2**28) as ws:
        hello: dict[str, Any] = {"type": "hello", "token": server.admin_token, "user": "bench"}
        if since is not None:
            hello["since"] = since
        started = time.perf_counter()
        await ws.send(json.dumps(hello))
        raw = await ws.recv()
        while json.loads(raw).get("type") != "welcome":  # the protocol puts the welcome first; be sure
            print(f"  (a {json.loads(raw).get('type')!r} frame came before the welcome)")
            raw = await ws.recv()
        elapsed = time.perf_counter() - started
    message = json.loads(raw)
    assert message["type"] == "welcome", message
    return elapsed, len(raw.encode() if isinstance(raw, str) else raw), message


NODE_FOLD = """
import { readFileSync } from 'node:fs';
import { emptyState, applyEvents, toServerJson } from '%s';
const events = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const expected = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const started = performance.now();
const result = applyEvents(emptyState(expected.canvas_id), events);
const elapsed = performance.now() - started;
const mine = toServerJson(result.state);
const same = result.status === 'applied' && mine.version === expected.version
  && JSON.stringify(mine.order) === JSON.stringify(expected.order)
  && JSON.stringify(mine.layers) === JSON.stringify(expected.layers);
console.log(JSON.stringify({ ms: elapsed, status: result.status, version: mine.version, same }));
"""


def client_fold_ms(http: httpx.Client, canvas_id: str, state: dict[str, Any], work: Path) -> float | None:
    """The browser client's fold of the whole log, in Node; None when node is not installed."""
    node = shutil.which("node")
    if node is None:
        return None
    events: list[dict[str, Any]] = []
    while True:
        page = http.get(f"/api/canvases/{canvas_id}/events", params={"after": len(events)}).json()["events"]
        if not page:
            break
        events.extend(page)
    script = work / "fold.mjs"
    script.write_text(NODE_FOLD % (ROOT / "client" / "js" / "state.js").as_uri())
    (work / "events.json").write_text(json.dumps(events))
    (work / "state.json").write_text(json.dumps(state))
    done = subprocess.run([node, str(script), str(work / "events.json"), str(work / "state.json")],
                          capture_output=True, text=True, timeout=1800, check=True)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["same"]:
        raise AssertionError(f"the client's fold differs from GET state: {result}")
    return round(result["ms"], 1)


async def measure(server: ServerProcess, canvas_id: str, samples: int, work: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with server.client() as http:
        started = time.perf_counter()
        response = http.get(f"/api/canvases/{canvas_id}/state")
        figures["state_first_ms"] = ms(time.perf_counter() - started)  # not cached yet: snapshot + folds
        state = response.json()
        order = state["order"]
        version = state["version"]
        rng = random.Random(5)
        latencies = []
        for index in range(samples):
            command = {"type": "set_opacity", "layer_id": rng.choice(order), "opacity": round(rng.random(), 3)}
            started = time.perf_counter()
            answer = http.post(
                f"/api/canvases/{canvas_id}/commands", json={"command_id": f"o{index}", "command": command}
            )
            latencies.append(time.perf_counter() - started)
            answer.raise_for_status()
        figures["command_ms_p50"] = ms(statistics.median(latencies))
        figures["command_ms_p99"] = ms(percentile(latencies, 0.99))
        timings, size = [], 0
        for _ in range(max(5, samples // 10)):
            started = time.perf_counter()
            response = http.get(f"/api/canvases/{canvas_id}/state")
            timings.append(time.perf_counter() - started)
            size = len(response.content)
        state = response.json()
        figures["state_ms"] = ms(statistics.median(timings))
        figures["state_bytes"] = size
        version = state["version"]
        fresh = [await welcome(server, canvas_id, None) for _ in range(5)]
        assert "state" in fresh[0][2]
        figures["welcome_ms"] = ms(statistics.median(item[0] for item in fresh))
        figures["welcome_bytes"] = fresh[0][1]
        if version > BEHIND:
            behind = [await welcome(server, canvas_id, version - BEHIND) for _ in range(5)]
            assert len(behind[0][2]["events"]) == BEHIND
            figures["welcome_behind_ms"] = ms(statistics.median(item[0] for item in behind))
            figures["welcome_behind_bytes"] = behind[0][1]
        figures["client_fold_ms"] = client_fold_ms(http, canvas_id, state, work)
    return figures


def plot(path: Path, layer_rows: list[dict[str, Any]], event_rows: list[dict[str, Any]]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    xs = [row["layers"] for row in layer_rows]
    for key, label in (("command_ms_p99", "command p99"), ("state_ms", "GET state"), ("welcome_ms", "welcome (new)"),
                       ("welcome_behind_ms", "welcome (5k behind)")):  # fmt: skip
        ys = [row.get(key) for row in layer_rows]
        if any(y is not None for y in ys):
            left.plot(xs, ys, marker="o", label=label)
    left.set(xscale="log", yscale="log", xlabel="live layers", ylabel="ms", title=f"{layer_rows[0]['events']:,} events")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    xs = [row["events"] for row in event_rows]
    for key, label in (("command_ms_p99", "command p99"), ("state_first_ms", "first GET state (uncached)"),
                       ("welcome_ms", "welcome (new)"), ("client_fold_ms", "client fold (Node)")):  # fmt: skip
        ys = [row.get(key) for row in event_rows]
        if any(y is not None for y in ys):
            right.plot(xs, ys, marker="o", label=label)
    right.set(xscale="log", yscale="log", xlabel="events in the log", ylabel="ms",
              title=f"{event_rows[0]['layers']:,} live layers")  # fmt: skip
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    print(f"plot: {path}")
    return True


def table(rows: list[dict[str, Any]], first: str) -> None:
    columns = [first, "command_ms_p50", "command_ms_p99", "state_first_ms", "state_ms", "state_bytes", "welcome_ms",
               "welcome_bytes", "welcome_behind_ms", "client_fold_ms", "memory_bytes"]  # fmt: skip
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row.get(column, "")) for column in columns))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of a minute or two")
    parser.add_argument("--layers", help="live layers of the first sweep (default 10,100,1000,5000)")
    parser.add_argument("--layers-log", type=int, help="log length of the layers sweep (default 10000)")
    parser.add_argument("--events", help="log lengths of the second sweep (default 1000,10000,100000)")
    parser.add_argument("--events-layers", type=int, default=100, help="live layers of the log sweep")
    parser.add_argument("--samples", type=int, help="commands timed per canvas (default 200)")
    parser.add_argument("--no-coldstart", action="store_true")
    parser.add_argument("--coldstart-repeats", type=int, help="default 3")
    parser.add_argument("--plot", type=Path, help="write the curves as a PNG (needs matplotlib)")
    args = parser.parse_args()
    quick = args.quick
    layer_counts = [int(n) for n in (args.layers or ("10,100,1000" if quick else "10,100,1000,5000")).split(",")]
    layers_log = args.layers_log or (6000 if quick else 10_000)
    event_counts = [int(n) for n in (args.events or ("1000,6000" if quick else "1000,10000,100000")).split(",")]
    samples = args.samples or (40 if quick else 200)
    shapes = list(dict.fromkeys([(layers, layers_log) for layers in layer_counts] +
                                [(args.events_layers, events) for events in event_counts]))  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        print(f"building {len(shapes)} canvases ({sum(events for _, events in shapes):,} events)")
        ids = await build_canvases(data, shapes)
        memory = {shape: memory_per_canvas(data, canvas_id) for shape, canvas_id in ids.items()}
        results: dict[tuple[int, int], dict[str, Any]] = {}
        # The canvases are rendered already, so the worker has nothing to do; it runs, as on a real server, and
        # the measurements wait until its model has loaded (which takes a core for a while).
        with ServerProcess(data, None, "--ws-max-per-address", "1000") as server:
            wait_model(server)
            for shape, canvas_id in ids.items():
                work = Path(tmp) / f"work-{shape[0]}-{shape[1]}"
                work.mkdir()
                started = time.perf_counter()
                results[shape] = {"layers": shape[0], "events": shape[1], "memory_bytes": memory[shape],
                                  **await measure(server, canvas_id, samples, work)}  # fmt: skip
                print(
                    f"  measured {shape[0]:>5} layers / {shape[1]:>6} events in {time.perf_counter() - started:.1f} s"
                )
    layer_rows = [results[(layers, layers_log)] for layers in layer_counts]
    event_rows = [results[(args.events_layers, events)] for events in event_counts]
    print(f"\nlive layers sweep ({layers_log:,} events):")
    table(layer_rows, "layers")
    print(f"\nlog length sweep ({args.events_layers} live layers):")
    table(event_rows, "events")

    figures: dict[str, Any] = {}
    for row in layer_rows:
        for key in ("command_ms_p50", "command_ms_p99", "state_ms", "state_bytes", "welcome_ms", "welcome_bytes",
                    "welcome_behind_ms", "welcome_behind_bytes", "client_fold_ms", "memory_bytes"):  # fmt: skip
            if row.get(key) is not None:
                figures[f"{key}_{row['layers']}_layers"] = row[key]
    for row in event_rows:
        label = f"{row['events'] // 1000}k" if row["events"] % 1000 == 0 else str(row["events"])
        for key in ("command_ms_p50", "command_ms_p99", "state_first_ms", "state_ms", "welcome_ms",
                    "welcome_behind_ms", "client_fold_ms", "memory_bytes"):  # fmt: skip
            if row.get(key) is not None:
                figures[f"{key}_{label}_events"] = row[key]
    figures["layers_sweep_events"] = layers_log
    figures["events_sweep_layers"] = args.events_layers
    figures.update(growth(layer_rows, event_rows))
    if not args.no_coldstart:
        from bench.coldstart import cold_start

        cold = cold_start(args.coldstart_repeats or (1 if quick else 3))
        figures["serve_to_health_s"] = cold["serve_to_health_s"]
        figures["serve_to_first_image_s"] = cold["serve_to_first_image_s"]
        figures["serve_to_model_ready_s"] = cold["serve_to_model_ready_s"]
    if args.plot is not None:
        figures["plot"] = plot(args.plot, layer_rows, event_rows)
    print(json.dumps(figures))


def growth(layer_rows: list[dict[str, Any]], event_rows: list[dict[str, Any]]) -> dict[str, float]:
    """Log-log slopes between the smallest and the largest canvas of a sweep: 1 is linear, 0 is flat."""
    import math

    def slope(rows: list[dict[str, Any]], x: str, y: str) -> float | None:
        first, last = rows[0], rows[-1]
        if not first.get(y) or not last.get(y) or first[x] == last[x]:
            return None
        return round(math.log(last[y] / first[y]) / math.log(last[x] / first[x]), 3)

    found = {
        "slope_state_ms_over_layers": slope(layer_rows, "layers", "state_ms"),
        "slope_welcome_ms_over_layers": slope(layer_rows, "layers", "welcome_ms"),
        "slope_state_bytes_over_layers": slope(layer_rows, "layers", "state_bytes"),
        "slope_command_ms_p50_over_events": slope(event_rows, "events", "command_ms_p50"),
        "slope_client_fold_ms_over_events": slope(event_rows, "events", "client_fold_ms"),
    }
    return {key: value for key, value in found.items() if value is not None}


def wait_model(server: ServerProcess, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = httpx.get(f"{server.url}/api/health", timeout=5).json().get("model") or {}
        if model.get("state", "ready") != "loading":
            return
        time.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main())
