"""Event-core benchmark: durable append throughput and projection time on a 100,000-event canvas.

    .venv/bin/python bench/projection.py [--events 100000] [--snapshot-every 500]

Appends go through the real path (CanvasService: decide, group commit, SQLite WAL with synchronous=FULL).
The baseline is one writer, which pays one fsync per command; ten concurrent writers share commits. The limit,
measured in the same run on the same disk: raw sqlite3 inserts of event-sized rows into the same kind of table
in WAL mode with synchronous=FULL, 50 rows per commit (group commit) and one row per commit.
Command ids are made as the browser client makes them (time first, then random: they go to the end of the
idempotency index); `append_events_per_s_random_command_ids` is the same run with all-random ids, as a client
that does not order them would send. `project_middle_ms_100k` is the median over 20 versions spread over the
snapshot interval at the middle of the log (0 to snapshot_every - 1 events past a snapshot); the worst of all the
versions timed is `project_any_version_max_ms_100k`.
Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.builtins import default_registry
from server.config import Settings
from server.core.commands import (
    AddLayer,
    ChangeParams,
    Command,
    DeleteLayer,
    MoveLayer,
    RecordRender,
    RenameLayer,
    SetOpacity,
    SetVisibility,
)
from server.core.state import CanvasState
from server.service import CanvasService
from server.services import open_services


def raw_sqlite(path: Path, rows: int, per_commit: int) -> float:
    """Events per second of bare sqlite3 inserts, `per_commit` rows per fsynced commit: the disk's limit."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (canvas_id TEXT, seq INTEGER, event_id TEXT UNIQUE, type TEXT,"
        " schema_version INTEGER, payload TEXT, actor TEXT, command_id TEXT, timestamp REAL,"
        " PRIMARY KEY (canvas_id, seq))"
    )
    payload = orjson.dumps({"layer_id": "w3-1234", "operation": "txt2img", "params": {"prompt": "p1234"},
                            "seed": 1234, "parents": [], "name": "Text to image 1234"}).decode()  # fmt: skip
    canvas = f"raw-{per_commit}"
    started = time.perf_counter()
    for start in range(0, rows, per_commit):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(canvas, seq, f"{canvas}-{seq}", "layer.added", 1, payload, "writer", f"c{seq}", time.time())
             for seq in range(start + 1, min(rows, start + per_commit) + 1)],
        )  # fmt: skip
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return rows / elapsed


def client_command_id() -> str:
    """A command id as the browser client makes one (client/js/commands.js `newCommandId`): time, then random."""
    return f"cmd-{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def random_command_id() -> str:
    """A command id as a client that knows nothing of their order might make one: all random."""
    return f"cmd-{secrets.token_hex(12)}"


async def append_throughput(
    service: CanvasService, writers: int, per_writer: int, new_command_id: Callable[[], str] = client_command_id
) -> float:
    canvas_id = (await service.create_canvas(f"throughput-{writers}", "bench")).canvas_id

    async def writer(index: int) -> None:
        for n in range(per_writer):
            await service.execute(
                canvas_id,
                AddLayer(layer_id=f"w{index}-{n}", operation="txt2img", params={"prompt": f"p{n}"}, seed=n),
                f"writer-{index}",
                command_id=new_command_id(),
            )

    started = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    return writers * per_writer / (time.perf_counter() - started)


def next_command(rng: random.Random, state: CanvasState, counter: list[int]) -> Command:
    """A plausible edit: mostly renders and small changes, some adds and deletes; about 150 live layers."""
    live = list(state.order)
    roll = rng.random()
    if not live or (roll < 0.16 and len(live) < 200):
        counter[0] += 1
        if live and rng.random() < 0.5:
            return AddLayer(layer_id=f"l{counter[0]}", operation="img2img", params={"source": rng.choice(live)})
        return AddLayer(layer_id=f"l{counter[0]}", operation="txt2img", params={"prompt": f"prompt {counter[0]}"})
    layer_id = rng.choice(live)
    layer = state.layers[layer_id]
    if roll < 0.40:
        output = f"{rng.getrandbits(256):064x}"
        fingerprint = {"model": "builtin:tiny", "device": "cpu", "dtype": "float32"}
        return RecordRender(layer_id=layer_id, revision=layer.revision, output=output, width=512, height=512,
                            fingerprint=fingerprint, duration_ms=812.5)  # fmt: skip
    if roll < 0.52:
        return SetOpacity(layer_id=layer_id, opacity=round(rng.random(), 3))
    if roll < 0.62:
        return RenameLayer(layer_id=layer_id, name=f"name {rng.randrange(10**6)}")
    if roll < 0.72:
        return SetVisibility(layer_id=layer_id, visible=not layer.visible)
    if roll < 0.80:
        return MoveLayer(layer_id=layer_id, index=rng.randrange(len(live)))
    if roll < 0.93 and layer.operation == "txt2img":
        return ChangeParams(layer_id=layer_id, params={"prompt": f"edited {rng.randrange(10**6)}"})
    if roll < 0.97 or len(live) < 50:
        return SetOpacity(layer_id=layer_id, opacity=round(rng.random(), 3))
    return DeleteLayer(layer_id=layer_id)


async def build_long_canvas(service: CanvasService, events: int) -> str:
    canvas_id = (await service.create_canvas("long", "bench")).canvas_id
    rng = random.Random(7)
    counter = [0]
    state = await service.state(canvas_id)
    while state.version < events:
        # Commands depend on the state, so they go one batch at a time; each batch is one transaction.
        batch = []
        for _ in range(min(200, events - state.version)):
            batch.append(next_command(rng, state, counter))
        results = await asyncio.gather(
            *(service.execute(canvas_id, command, "bench") for command in batch), return_exceptions=True
        )
        del results  # later commands in a batch may be refused (their layer went first); that is fine here
        state = await service.state(canvas_id)
    return canvas_id


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def time_projection(service: CanvasService, canvas_id: str, version: int, snapshots: bool, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        service.project_at(canvas_id, version, use_snapshots=snapshots)
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--snapshot-every", type=int, default=500)
    parser.add_argument("--append-commands", type=int, default=2000, help="commands per throughput run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # wired by the composition root, as the server is (server/services.py): the same decider and store
        settings = Settings(data_dir=Path(tmp), snapshot_every=args.snapshot_every)
        services = await open_services(settings, default_registry(), role="tool")
        service, store = services.canvases, services.store
        try:
            one = await append_throughput(service, 1, args.append_commands)
            ten = await append_throughput(service, 10, args.append_commands // 10)
            ten_random = await append_throughput(service, 10, args.append_commands // 10, random_command_id)
            raw_path = Path(tmp) / "raw.db"
            raw_group = raw_sqlite(raw_path, 20 * args.append_commands, 50)
            # Ten writers that each wait for their ack can never have more than ten commands in one commit:
            # this is the disk's limit for them.
            raw_ten = raw_sqlite(raw_path, 5 * args.append_commands, 10)
            raw_single = raw_sqlite(raw_path, args.append_commands, 1)
            print(f"durable appends: 1 writer {one:,.0f} events/s, 10 writers {ten:,.0f} events/s "
                  f"({ten / one:.1f}x by group commit); {ten_random:,.0f} with random command ids")  # fmt: skip
            print(f"raw sqlite3, same disk: {raw_group:,.0f} events/s at 50 per commit, {raw_ten:,.0f} at 10, "
                  f"{raw_single:,.0f} at 1 per commit; the service reaches {ten / raw_group:.3f} of the group-commit "
                  f"limit, {ten / raw_ten:.3f} of the 10-per-commit one")  # fmt: skip

            started = time.perf_counter()
            canvas_id = await build_long_canvas(service, args.events)
            head = store.head(canvas_id)
            assert head is not None
            state = service.project_at(canvas_id, head)
            print(f"built a {head:,}-event canvas in {time.perf_counter() - started:.1f}s: "
                  f"{len(state.layers)} live layers, {len(state.deleted)} deleted")  # fmt: skip

            middle = head // 2
            # The middle of the log: versions spread over one snapshot interval there (0 to snapshot_every - 1
            # events after a snapshot), not the one version head // 2, which may be a snapshot's own.
            step = max(1, args.snapshot_every // 20)
            around_middle = range(middle - middle % args.snapshot_every, middle - middle % args.snapshot_every
                                  + args.snapshot_every, step)  # fmt: skip
            figures = {
                "project_latest_ms_100k": time_projection(service, canvas_id, head, True, 20),
                "project_middle_ms_100k": round(
                    statistics.median(time_projection(service, canvas_id, v, True, 3) for v in around_middle), 3
                ),
                "project_latest_ms_100k_no_snapshots": time_projection(service, canvas_id, head, False, 3),
                "project_middle_ms_100k_no_snapshots": time_projection(service, canvas_id, middle, False, 3),
            }
            # The worst case with snapshots: a version just before the next snapshot.
            rng = random.Random(1)
            versions = [rng.randrange(1, head + 1) for _ in range(40)]
            versions += [v for v in range(args.snapshot_every - 1, head, args.snapshot_every)][-5:]
            worst = max(time_projection(service, canvas_id, v, True, 3) for v in versions)
            snapshot = store.snapshot_at_or_before(canvas_id, head)
            figures["project_any_version_max_ms_100k"] = worst
            for key, value in figures.items():
                print(f"{key}: {value} ms")
        finally:
            await services.close()
            store.close()

    result = {
        "append_events_per_s": round(ten),
        "append_events_per_s_random_command_ids": round(ten_random),
        "raw_group_commit_events_per_s": round(raw_group),
        "append_over_raw": round(ten / raw_group, 4),
        "raw_10_per_commit_events_per_s": round(raw_ten),
        "append_over_raw_10_per_commit": round(ten / raw_ten, 4),
        "raw_one_commit_events_per_s": round(raw_single),
        "append_1_writer_over_raw_one_commit": round(one / raw_single, 3),
        "append_events_per_s_1_writer": round(one),
        "group_commit_speedup": round(ten / one, 2),
        "events": head,
        "snapshot_every": args.snapshot_every,
        "snapshot_bytes": len(snapshot.state) if snapshot else 0,
        **figures,
    }
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    asyncio.run(main())
