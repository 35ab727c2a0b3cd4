"""The `opendream` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from server.config import Settings


def _add_storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, help="data directory (blobs, SQLite file); env OPENDREAM_DATA; default ./data"
    )
    parser.add_argument("--db", help="database URL (default: SQLite in the data directory); env OPENDREAM_DB")


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    overrides: dict[str, object] = {key: value for key, value in extra.items() if value is not None}
    if args.data is not None:
        overrides["data_dir"] = args.data
    if args.db is not None:
        overrides["db_url"] = args.db
    return Settings(**overrides)  # type: ignore[arg-type]


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        model=args.model,
        device=args.device,
        reproducible=args.reproducible,
        attention_slicing=args.attention_slicing or None,
        vae_tiling=args.vae_tiling or None,
        render=False if args.no_render else None,
        extensions_dir=args.extensions,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"opendream: serving on http://{settings.host}:{settings.port}  (data: {settings.data_dir})", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ws_max_size=settings.max_request_bytes,
    )
    return 0


def migrate(args: argparse.Namespace) -> int:
    from server.store.migrate import current, upgrade

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    print(f"opendream: database at revision {current(settings.database_url)} ({settings.database_url})")
    return 0


def replay(args: argparse.Namespace) -> int:
    """Render a stored canvas again from scratch and compare every layer with what was recorded."""
    import orjson

    from server.app import load_operations, renderer_factory
    from server.blobs import LocalBlobStore
    from server.core.decide import Decider
    from server.replay import replay_state
    from server.service import CanvasService
    from server.store.sql import SQLEventStore

    settings = _settings(args, model=args.model, device=args.device, reproducible=args.reproducible)
    store = SQLEventStore(settings.database_url)
    head = store.head(args.canvas)
    if head is None:
        print(f"opendream: canvas {args.canvas!r} does not exist in {settings.database_url}", file=sys.stderr)
        return 2
    version = head if args.version is None else args.version
    if not 0 <= version <= head:
        print(f"opendream: version {version} is out of range 0..{head}", file=sys.stderr)
        return 2
    operations = load_operations(settings)
    state = CanvasService(store, Decider(operations)).project_at(args.canvas, version)
    blobs = LocalBlobStore(settings.blob_dir)
    renderer = renderer_factory(settings, operations, blobs)()
    total = len(state.layers)
    done = 0

    def report(verdict) -> None:
        nonlocal done
        done += 1
        if not args.json:
            detail = verdict.error or (f"max diff {verdict.max_diff}" if verdict.max_diff else "")
            print(f"[{done}/{total}] {verdict.layer_id:<16} {verdict.operation:<18} {verdict.outcome:<17} {detail}")

    verdicts = replay_state(state, blobs, renderer, tolerance=args.tolerance, on_layer=report)
    store.close()
    bad = [v for v in verdicts if v.outcome in ("different", "failed")]
    if args.json:
        print(orjson.dumps({"canvas_id": args.canvas, "version": version,
                            "layers": [v.to_json() for v in verdicts]}).decode())  # fmt: skip
    else:
        counts = {
            outcome: sum(v.outcome == outcome for v in verdicts) for outcome in sorted({v.outcome for v in verdicts})
        }
        print("opendream: " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items()))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="opendream", description="Collaborative, event-sourced Stable Diffusion canvas."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the server (migrates the database first)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve_parser.add_argument(
        "--model",
        help="builtin:tiny (default), a hub id, a diffusers folder or a .safetensors file; env OPENDREAM_MODEL",
    )
    serve_parser.add_argument("--device", help="cuda, cuda:1, mps or cpu (default: the best available)")
    serve_parser.add_argument("--attention-slicing", action="store_true", help="less GPU memory, a little slower")
    serve_parser.add_argument("--vae-tiling", action="store_true", help="decode large images in tiles (less memory)")
    serve_parser.add_argument("--no-render", action="store_true", help="run no render worker in this process")
    serve_parser.add_argument(
        "--extensions", type=Path, help="a directory of extension modules (*.py); env OPENDREAM_EXTENSIONS_DIR"
    )
    serve_parser.add_argument(
        "--reproducible",
        action="store_true",
        default=None,
        help="pin threads and deterministic kernels for bit-identical replays; env OPENDREAM_REPRODUCIBLE=1",
    )
    _add_storage_flags(serve_parser)
    serve_parser.set_defaults(run=serve)

    migrate_parser = commands.add_parser("migrate", help="bring the database schema up to date")
    _add_storage_flags(migrate_parser)
    migrate_parser.set_defaults(run=migrate)

    replay_parser = commands.add_parser("replay", help="render a canvas again from scratch and verify every layer")
    replay_parser.add_argument("--canvas", required=True, help="canvas id")
    replay_parser.add_argument("--version", type=int, help="replay the canvas as it was at this version")
    replay_parser.add_argument("--tolerance", type=int, default=2, help="max pixel difference counted as equal")
    replay_parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    replay_parser.add_argument("--model", help="model spec (default: builtin:tiny)")
    replay_parser.add_argument("--device", help="cuda, mps or cpu")
    replay_parser.add_argument("--reproducible", action="store_true", default=None, help="as for serve")
    _add_storage_flags(replay_parser)
    replay_parser.set_defaults(run=replay)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
