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

    settings = _settings(args, host=args.host, port=args.port)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="opendream", description="Collaborative, event-sourced Stable Diffusion canvas."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the server (migrates the database first)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    _add_storage_flags(serve_parser)
    serve_parser.set_defaults(run=serve)

    migrate_parser = commands.add_parser("migrate", help="bring the database schema up to date")
    _add_storage_flags(migrate_parser)
    migrate_parser.set_defaults(run=migrate)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
