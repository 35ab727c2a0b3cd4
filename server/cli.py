"""The `opendream` command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from server.config import Settings

if TYPE_CHECKING:
    from engine.operation import OperationRegistry


def _add_storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, help="data directory (blobs, SQLite file); env OPENDREAM_DATA; default ./data"
    )
    parser.add_argument("--db", help="database URL (default: SQLite in the data directory); env OPENDREAM_DB")
    parser.add_argument(
        "--blobs", help="image store: a directory (default DATA/blobs) or s3://bucket/prefix; env OPENDREAM_BLOBS"
    )


def _add_render_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pixels", type=int, help="largest image one render may make (default: 1024² on CPU, 2048² on a GPU)"
    )
    parser.add_argument(
        "--max-work",
        type=int,
        help="pixels x steps one render may take (default: 512²x60 on CPU, 1024²x150 on a GPU)",
    )
    parser.add_argument(
        "--taesd", help="live previews through TAESD: a diffusers AutoencoderTiny folder or hub id (default: a "
        "fast linear preview); env OPENDREAM_TAESD",
    )  # fmt: skip
    parser.add_argument("--no-previews", action="store_true", help="send no live previews while denoising")
    parser.add_argument(
        "--model-family",
        help="sd1, sd2, sd2-v, sdxl, sd3, flux (or sd1-inpaint, ...): overrides what the model's files say; env "
        "OPENDREAM_MODEL_FAMILY",
    )
    parser.add_argument(
        "--models",
        type=Path,
        help="the model library: a folder with checkpoints/, loras/, controlnet/, vae/, embeddings/ and an optional "
        "models.toml (default: DATA/models); env OPENDREAM_MODELS",
    )
    parser.add_argument(
        "--private-render-cache",
        action="store_true",
        help="reuse renders only within a canvas, so that nobody learns what other canvases rendered; env "
        "OPENDREAM_PRIVATE_RENDER_CACHE=1",
    )


def _add_live_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ws-max-per-address", type=int, help="live connections per client address (default 128)")
    parser.add_argument("--ws-max-per-token", type=int, help="live connections per token (default 256)")
    parser.add_argument(
        "--ws-outbound-bytes", type=int, help="bytes queued for one slow client before it is cut off (default 8 MiB)"
    )


def _render_settings(args: argparse.Namespace) -> dict[str, object]:
    return {
        "max_pixels": args.max_pixels,
        "max_work": args.max_work,
        "taesd": args.taesd,
        "previews": False if args.no_previews else None,
        "private_render_cache": True if args.private_render_cache else None,
        "model_family": args.model_family,
        "models_root": args.models,
    }


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    overrides: dict[str, object] = {key: value for key, value in extra.items() if value is not None}
    if args.data is not None:
        overrides["data_dir"] = args.data
    if args.db is not None:
        overrides["db_url"] = args.db
    if args.blobs is not None:
        overrides["blobs"] = args.blobs
    return Settings(**overrides)  # type: ignore[arg-type]


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.security import RedactQueries, bounded_h11_protocol

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
        local_admin=False if args.no_local_admin else None,
        allowed_hosts=_list(args.allowed_hosts),
        allowed_origins=_list(args.allowed_origins),
        open_creation=True if args.open_creation else None,
        header_timeout_s=args.header_timeout,
        **_render_settings(args),
        ws_max_per_address=args.ws_max_per_address,
        ws_max_per_token=args.ws_max_per_token,
        ws_outbound_bytes=args.ws_outbound_bytes,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Requests are logged by server/security.py (opendream.access: no query strings, where tokens may be), at
    # the level asked for; uvicorn's access log is off and its own lines lose their query strings.
    logging.getLogger("opendream.access").setLevel(args.log_level.upper())
    print(f"opendream: serving on http://{settings.host}:{settings.port}  (data: {settings.data_dir})", flush=True)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=False,
        # h11 bounds what one request's line and headers may buffer (httptools does not), and the protocol adds
        # a deadline for the headers; an idle kept-alive connection is closed after keep_alive_s.
        http=bounded_h11_protocol(settings.header_timeout_s),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_s,
        ws_max_size=settings.max_request_bytes,
        # Open WebSockets and slow clients must not hold a shutdown (SIGTERM, Ctrl+C) for long.
        timeout_graceful_shutdown=3,
    )
    for name in ("uvicorn.error", "uvicorn.access"):  # after Config: it configures uvicorn's logging
        logging.getLogger(name).addFilter(RedactQueries())
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else 3  # uvicorn's STARTUP_FAILURE, as uvicorn.run exits


def _list(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(item.strip() for item in value.split(",") if item.strip())


def worker(args: argparse.Namespace) -> int:
    """A render worker: claims canvases with work from PostgreSQL and renders them (one per GPU)."""
    import asyncio
    import signal

    settings = _settings(
        args, model=args.model, device=args.device, reproducible=args.reproducible, **_render_settings(args)
    )
    if not settings.shared:
        print("opendream: a separate worker needs a shared PostgreSQL database (--db postgresql+psycopg://…)",
              file=sys.stderr)  # fmt: skip
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        from server.services import running_services

        async with running_services(settings, role="worker", lease_s=args.lease) as services:
            assert services.renders is not None
            worker_id = getattr(services.renders.work, "worker_id", "?")
            print(f"opendream: worker {worker_id} rendering from {settings.database_url}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    asyncio.run(run())
    return 0


def migrate(args: argparse.Namespace) -> int:
    from server.store.migrate import current, upgrade

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    print(f"opendream: database at revision {current(settings.database_url)} ({settings.database_url})")
    return 0


def _progress(total: int, quiet: bool, describe):
    """A callback printing one progress line per layer: `[####      ] 3/7  layer  operation  what`."""
    done = 0

    def report(verdict) -> None:
        nonlocal done
        done += 1
        if not quiet:
            bar = "#" * (20 * done // max(total, 1))
            print(f"[{bar:<20}] {done}/{total}  {verdict.layer_id:<16} {verdict.operation:<16} {describe(verdict)}",
                  flush=True)  # fmt: skip

    return report


def _outcome_words(outcome: str) -> str:
    return outcome.replace("_", " ")


def _replay_source(args: argparse.Namespace, settings: Settings, operations: OperationRegistry, scratch: Path):
    """(state, blobs, label, workflow or None) of a workflow FILE (in a throwaway store) or a stored --canvas;
    None after saying why there is none."""
    from server.blobstore import LocalBlobStore, open_blob_store

    if args.file is not None:
        loaded = _load_workflow_file(args.file, settings, operations)
        if loaded is None:
            return None
        state, workflow = loaded
        blobs = LocalBlobStore(scratch / "blobs")
        for data in workflow.blobs.values():
            blobs.put(data)
        return state, blobs, str(args.file), workflow
    if getattr(args, "canvas", None) is not None:
        found = _stored_state(args, settings, operations)
        if found is None:
            return None
        return found, open_blob_store(settings.blobs, settings.blob_dir), f"canvas {args.canvas}", None
    print("opendream: name a workflow FILE or --canvas ID", file=sys.stderr)
    return None


def replay(args: argparse.Namespace) -> int:
    """Render a canvas (stored, or a workflow file in a throwaway store) again from scratch and judge every layer
    against what was recorded; with --verify, exit non-zero unless something was verified and nothing differs."""
    import tempfile

    import orjson

    from server.replay import DIFFERS, OUTCOMES, VERIFIED, replay_state
    from server.services import load_operations, renderer_factory

    settings = _settings(args, model=args.model, device=args.device, reproducible=args.reproducible)
    operations = load_operations(settings)
    with tempfile.TemporaryDirectory(prefix="opendream-replay-") as scratch:
        source = _replay_source(args, settings, operations, Path(scratch))
        if source is None:
            return 2
        state, blobs, label, _ = source
        renderer = renderer_factory(settings, operations, blobs)()
        total = len(state.order)
        if not args.json:
            print(f"opendream: replaying {label} at version {state.version}: {total} layers")

        def describe(verdict) -> str:
            return f"{_outcome_words(verdict.outcome):<17} {verdict.detail}".rstrip()

        report = _progress(total, args.json, describe)
        verdicts = replay_state(state, blobs, renderer, tolerance=args.tolerance, on_layer=report)
    counts = {outcome: n for outcome in OUTCOMES if (n := sum(v.outcome == outcome for v in verdicts))}
    verified = sum(v.outcome in VERIFIED for v in verdicts)
    could_not = sum(v.outcome == "could_not_render" for v in verdicts)
    differs = sum(v.outcome in DIFFERS for v in verdicts)
    nothing_verified = args.verify and verified == 0
    if args.json:
        print(orjson.dumps({"source": label, "version": state.version, "counts": counts, "verified": verified,
                            "layers": [v.to_json() for v in verdicts]}).decode())  # fmt: skip
    else:
        summary = ", ".join(f"{n} {_outcome_words(outcome)}" for outcome, n in counts.items()) or "no layers"
        print(f"opendream: {summary}; {verified} of {len(verdicts)} layers verified")
    if nothing_verified:
        print(
            f"opendream: nothing was verified in {label}: no layer has a recorded image made by this engine and "
            "model that could be rendered again here",
            file=sys.stderr,
        )
    elif args.verify and differs:
        print(f"opendream: {differs} of {verified} verified layers differ from their record", file=sys.stderr)
    return 1 if could_not or (args.verify and (differs or nothing_verified)) else 0


def run_workflow(args: argparse.Namespace) -> int:
    """Render every layer of a workflow file (ours or the original Opendream's) headlessly in a throwaway store
    and write each layer's PNG, with the workflow inside, and the composite into a folder."""
    import dataclasses
    import tempfile
    from types import MappingProxyType

    from server.composite import composite_png
    from server.core.state import RenderOutput
    from server.replay import replay_state
    from server.services import load_operations, renderer_factory
    from server.workflow import embed_in_png, export_workflow

    settings = _settings(args, model=args.model, device=args.device, reproducible=args.reproducible)
    operations = load_operations(settings)
    name = _file_slug(args.file.name)
    out = args.out if args.out is not None else Path(f"opendream-run-{name}")
    with tempfile.TemporaryDirectory(prefix="opendream-run-") as scratch:
        source = _replay_source(args, settings, operations, Path(scratch))
        if source is None:
            return 2
        state, blobs, label, workflow = source
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"opendream: cannot create {out}: {exc.strerror}", file=sys.stderr)
            return 2
        renderer = renderer_factory(settings, operations, blobs)()
        total = len(state.order)
        print(f"opendream: running {label} with {settings.model}: {total} layers into {out}", flush=True)

        def describe(verdict) -> str:
            if verdict.outcome == "could_not_render":
                return f"could not render: {verdict.error}"
            size = verdict.replayed_size
            extra = "; " + verdict.detail if verdict.inputs_from_record else ""
            return f"rendered {size[0]}x{size[1]}{extra}"

        verdicts = replay_state(state, blobs, renderer, on_layer=_progress(total, False, describe))
        document = export_workflow(state.name, str(workflow.source.get("canvas_id") or "run"), workflow.events,
                                   blobs, operations, include_renders=False)  # fmt: skip
        layers = dict(state.layers)
        written = 0
        for index, verdict in enumerate(verdicts, start=1):
            layer = layers[verdict.layer_id]
            if verdict.replayed is None:
                layers[layer.id] = dataclasses.replace(layer, status="failed", output=None)
                continue
            width, height = verdict.replayed_size
            output = RenderOutput(verdict.replayed, width, height, verdict.replayed_fingerprint or {}, 0.0)
            layers[layer.id] = dataclasses.replace(layer, status="rendered", output=output)
            png = embed_in_png(blobs.get(verdict.replayed), document)
            (out / f"{index:02d}-{_file_slug(layer.id.replace('.', '-'))}.png").write_bytes(png)
            written += 1
        composite = composite_png(dataclasses.replace(state, layers=MappingProxyType(layers)), blobs, operations)
        if composite is not None:
            (out / "composite.png").write_bytes(embed_in_png(composite, document))
    failed = [v.layer_id for v in verdicts if v.outcome == "could_not_render"]
    summary = f"opendream: rendered {written} of {total} layers into {out}"
    summary += ", and composite.png" if composite is not None else " (nothing visible: no composite)"
    if failed:
        summary += f"; {len(failed)} could not render: {', '.join(failed)}"
    print(summary)
    return 1 if failed else 0


def _file_slug(name: str) -> str:
    stem = name.split(".")[0] if not name.startswith(".") else name
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem).strip("-")[:60] or "workflow"


def _stored_state(args: argparse.Namespace, settings: Settings, operations: OperationRegistry):
    from server.services import reading_services

    with reading_services(settings, operations) as canvases:
        head = canvases.store.head(args.canvas)
        if head is None:
            print(f"opendream: canvas {args.canvas!r} does not exist in {settings.database_url}", file=sys.stderr)
            return None
        version = head if args.version is None else args.version
        if not 0 <= version <= head:
            print(f"opendream: version {version} is out of range 0..{head}", file=sys.stderr)
            return None
        return canvases.project_at(args.canvas, version)


def _load_workflow_file(path: Path, settings: Settings, operations: OperationRegistry):
    """(state, workflow) of a workflow file, validated; None (after saying why) when it is not importable."""
    from server.core.projection import empty_state, project
    from server.workflow import InvalidWorkflow, load_document, parse_workflow

    try:
        document = load_document(path.read_bytes(), settings.workflow_limits)
        workflow = parse_workflow(document, operations, settings.workflow_limits)
    except OSError as exc:
        print(f"opendream: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return None
    except InvalidWorkflow as exc:
        print(f"opendream: {path} is not a valid workflow: {exc}", file=sys.stderr)
        return None
    return project(empty_state("replay"), workflow.events), workflow


def workflow_export(args: argparse.Namespace) -> int:
    import orjson

    from server.services import load_operations, open_blobs, reading_services
    from server.workflow import export_workflow

    settings = _settings(args)
    operations = load_operations(settings)
    state = _stored_state(args, settings, operations)
    if state is None:
        return 2
    with reading_services(settings, operations) as canvases:
        events = canvases.store.read(args.canvas, until=state.version)
    document = export_workflow(state.name, args.canvas, events, open_blobs(settings), operations, not args.lean)
    data = orjson.dumps(document)
    if args.output is None or str(args.output) == "-":
        sys.stdout.write(data.decode() + "\n")
    else:
        args.output.write_bytes(data)
        print(f"opendream: wrote {args.output} ({len(document['events'])} events, {len(document['blobs'])} images)")
    return 0


def workflow_import(args: argparse.Namespace) -> int:
    import asyncio

    from server.services import load_operations, open_blobs, running_services
    from server.workflow import InvalidWorkflow, import_workflow, load_document, parse_workflow

    settings = _settings(args)
    operations = load_operations(settings)
    blobs = open_blobs(settings)
    try:
        document = load_document(args.file.read_bytes(), settings.workflow_limits)
        workflow = parse_workflow(document, operations, settings.workflow_limits, blobs.exists)
    except OSError as exc:
        print(f"opendream: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except InvalidWorkflow as exc:
        print(f"opendream: {args.file} is not a valid workflow: {exc}", file=sys.stderr)
        return 2

    async def run() -> tuple[str, int, str]:
        async with running_services(settings, operations, role="tool") as services:
            result = await import_workflow(workflow, services.canvases, services.blobs, operations, trusted=True)
            token, _ = await asyncio.to_thread(services.tokens.issue, result.canvas_id, "owner", "owner")
            return result.canvas_id, result.version, token

    canvas_id, stored, token = asyncio.run(run())
    print(f"opendream: imported {args.file} as canvas {canvas_id} ({stored} events stored)")
    for warning in workflow.warnings:
        print(f"opendream: warning: {warning}", file=sys.stderr)
    print(f"owner token: {token}")
    return 0


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
    serve_parser.add_argument(
        "--no-render", "--no-worker", action="store_true", help="run no render worker in this process (a web replica)"
    )
    serve_parser.add_argument(
        "--extensions", type=Path, help="a directory of extension modules (*.py); env OPENDREAM_EXTENSIONS_DIR"
    )
    serve_parser.add_argument(
        "--reproducible",
        action="store_true",
        default=None,
        help="pin threads and deterministic kernels for bit-identical replays; env OPENDREAM_REPRODUCIBLE=1",
    )
    serve_parser.add_argument(
        "--no-local-admin", action="store_true",
        help="never hand the admin token to a browser on this machine (GET /api/session); env OPENDREAM_LOCAL_ADMIN=0",
    )  # fmt: skip
    serve_parser.add_argument(
        "--allowed-hosts", metavar="HOST,…",
        help="host names requests may use besides loopback ones ('*': any, '*.example.com': its subdomains); "
        "env OPENDREAM_ALLOWED_HOSTS",
    )  # fmt: skip
    serve_parser.add_argument(
        "--allowed-origins", metavar="ORIGIN,…",
        help="origins (https://host[:port]) besides the server's own whose pages may write and open WebSockets; "
        "env OPENDREAM_ALLOWED_ORIGINS",
    )  # fmt: skip
    serve_parser.add_argument(
        "--open-creation", action="store_true", default=None,
        help="let anyone create and import canvases without a token (rate-limited per address); "
        "env OPENDREAM_OPEN_CREATION=1",
    )  # fmt: skip
    serve_parser.add_argument(
        "--header-timeout", type=float, metavar="SECONDS", help="longest a request may take to send its headers "
        "(default 10)",
    )  # fmt: skip
    _add_render_flags(serve_parser)
    _add_live_flags(serve_parser)
    _add_storage_flags(serve_parser)
    serve_parser.set_defaults(run=serve)

    worker_parser = commands.add_parser("worker", help="a render worker for a PostgreSQL deployment (one per GPU)")
    worker_parser.add_argument("--model", help="model spec (default: builtin:tiny)")
    worker_parser.add_argument("--device", help="cuda, cuda:1, mps or cpu")
    worker_parser.add_argument("--reproducible", action="store_true", default=None)
    worker_parser.add_argument("--lease", type=float, default=30.0, help="seconds a claim lasts without renewal")
    _add_render_flags(worker_parser)
    _add_storage_flags(worker_parser)
    worker_parser.set_defaults(run=worker)

    migrate_parser = commands.add_parser("migrate", help="bring the database schema up to date")
    _add_storage_flags(migrate_parser)
    migrate_parser.set_defaults(run=migrate)

    replay_parser = commands.add_parser(
        "replay", help="render a workflow file or a stored canvas again from scratch, and verify every layer"
    )
    replay_parser.add_argument("file", nargs="?", type=Path, help="a workflow file (.json, or a PNG carrying one)")
    replay_parser.add_argument("--canvas", help="a stored canvas instead of a file")
    replay_parser.add_argument(
        "--verify", action="store_true", help="exit 1 when a layer differs from its record or nothing was verified"
    )
    replay_parser.add_argument("--version", type=int, help="replay the canvas as it was at this version")
    replay_parser.add_argument("--tolerance", type=int, default=2, help="max pixel difference counted as equal")
    replay_parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    replay_parser.add_argument("--model", help="model spec (default: builtin:tiny)")
    replay_parser.add_argument("--device", help="cuda, mps or cpu")
    replay_parser.add_argument("--reproducible", action="store_true", default=None, help="as for serve")
    _add_storage_flags(replay_parser)
    replay_parser.set_defaults(run=replay)

    run_parser = commands.add_parser(
        "run", help="render a workflow file headlessly and write every layer's PNG and the composite"
    )
    run_parser.add_argument("file", type=Path, help="a workflow file (ours, a PNG carrying one, or the original "
                            "Opendream's)")  # fmt: skip
    run_parser.add_argument("--out", "-o", type=Path, help="folder to write (default ./opendream-run-NAME)")
    run_parser.add_argument("--model", help="model spec (default: builtin:tiny)")
    run_parser.add_argument("--device", help="cuda, mps or cpu")
    run_parser.add_argument("--reproducible", action="store_true", default=None, help="as for serve")
    _add_storage_flags(run_parser)
    run_parser.set_defaults(run=run_workflow)

    workflow_parser = commands.add_parser("workflow", help="export or import workflow files")
    workflow_commands = workflow_parser.add_subparsers(dest="workflow_command", required=True)
    export_parser = workflow_commands.add_parser("export", help="write a canvas's log as a workflow file")
    export_parser.add_argument("--canvas", required=True)
    export_parser.add_argument("--version", type=int, help="export the canvas as it was at this version")
    export_parser.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    export_parser.add_argument("--lean", action="store_true", help="leave rendered images out (they regenerate)")
    _add_storage_flags(export_parser)
    export_parser.set_defaults(run=workflow_export)
    import_parser = workflow_commands.add_parser("import", help="create a canvas from a workflow file")
    import_parser.add_argument("file", type=Path)
    _add_storage_flags(import_parser)
    import_parser.set_defaults(run=workflow_import)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
