"""CPU work of the event core in instructions, for a machine too noisy for wall-clock A/B comparisons.

    .venv/bin/python bench/instructions.py [--commands 2000] [--events 20000]

Counts the instructions valgrind (cachegrind, no cache simulation) sees for (a) 10 concurrent writers appending
`--commands` layer adds through the real service and SQLite, and (b) projecting 20 versions spread over the
snapshot interval at the middle of a `--events`-event canvas (built first, without valgrind), twice each. Each
figure is the difference between a run that does the work and one that only starts and stops, divided by the
work done: the same code gives the same count within a few percent, whatever else the machine is doing (the
count does not see cache misses or the fsync's wait; bench/projection.py measures those). Compare two commits
by running this in each checkout. Needs valgrind (`apt-get install valgrind`).
Ends with one JSON line: {"instructions_per_command_10_writers", "instructions_per_middle_projection"}.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SNAPSHOT_EVERY = 500


async def _work(kind: str, amount: int, data: Path) -> None:
    from projection import append_throughput, build_long_canvas

    from engine.builtins import default_registry
    from server.config import Settings
    from server.services import open_services

    settings = Settings(data_dir=data, snapshot_every=SNAPSHOT_EVERY)
    services = await open_services(settings, default_registry(), role="tool")
    try:
        if kind == "append" and amount:
            await append_throughput(services.canvases, 10, amount // 10)
        elif kind == "build":
            (data / "canvas").write_text(await build_long_canvas(services.canvases, amount))
        elif kind == "project":
            canvas_id = (data / "canvas").read_text()
            head = services.store.head(canvas_id)
            assert head is not None
            start = head // 2 - (head // 2) % SNAPSHOT_EVERY
            for _ in range(amount):
                for version in range(start, start + SNAPSHOT_EVERY, SNAPSHOT_EVERY // 20):
                    services.canvases.project_at(canvas_id, version)
    finally:
        await services.close()


def _instructions(kind: str, amount: int, data: Path) -> int:
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, __file__, "--work", kind, str(amount), str(data)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--work", nargs=3, help=argparse.SUPPRESS)  # one measured run, under valgrind
    args = parser.parse_args()
    if args.work:
        kind, amount, data = args.work
        asyncio.run(_work(kind, int(amount), Path(data)))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        appends, canvas = Path(tmp) / "appends", Path(tmp) / "long"
        for folder in (appends, canvas):
            folder.mkdir()
        idle = _instructions("append", 0, appends)
        per_command = (_instructions("append", args.commands, appends) - idle) / args.commands
        print(f"appends, 10 writers: {per_command:,.0f} instructions per command")
        asyncio.run(_work("build", args.events, canvas))
        repeats = 2
        idle = _instructions("project", 0, canvas)
        per_projection = (_instructions("project", repeats, canvas) - idle) / (20 * repeats)
        print(f"a version in the middle of a {args.events:,}-event canvas: {per_projection:,.0f} instructions")
    print(orjson.dumps({"instructions_per_command_10_writers": round(per_command),
                        "instructions_per_middle_projection": round(per_projection),
                        "commands": args.commands, "events": args.events}).decode())  # fmt: skip


if __name__ == "__main__":
    main()
