"""Server settings: command-line flags over environment variables over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from server.images import ImageLimits


@dataclass(frozen=True)
class WorkflowLimits:
    """What an imported workflow file may hold."""

    max_bytes: int = 256 * 1024 * 1024
    max_events: int = 500_000
    max_blobs: int = 10_000
    images: ImageLimits = field(default_factory=ImageLimits)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("OPENDREAM_DATA", "data")))
    db_url: str | None = field(default_factory=lambda: os.environ.get("OPENDREAM_DB"))
    host: str = "127.0.0.1"
    port: int = 8000
    snapshot_every: int = 500
    model: str = field(default_factory=lambda: os.environ.get("OPENDREAM_MODEL", "builtin:tiny"))
    device: str | None = field(default_factory=lambda: os.environ.get("OPENDREAM_DEVICE") or None)
    render: bool = True  # run the render worker in this process
    blobs: str | None = field(default_factory=lambda: os.environ.get("OPENDREAM_BLOBS"))  # dir or s3://bucket/prefix
    extensions_dir: Path | None = field(
        default_factory=lambda: (
            Path(os.environ["OPENDREAM_EXTENSIONS_DIR"]) if os.environ.get("OPENDREAM_EXTENSIONS_DIR") else None
        )
    )
    local_admin: bool = True  # hand the admin token to a browser on this machine (only if listening on loopback)
    attention_slicing: bool = False  # less GPU memory, a little slower
    vae_tiling: bool = False  # decode large images in tiles
    # Pin thread count and deterministic kernels so replays match bit for bit (costs speed: docs/reproducibility.md)
    reproducible: bool = field(default_factory=lambda: os.environ.get("OPENDREAM_REPRODUCIBLE", "") == "1")
    max_request_bytes: int = 1024 * 1024  # JSON bodies
    image_limits: ImageLimits = field(default_factory=ImageLimits)
    workflow_limits: WorkflowLimits = field(default_factory=WorkflowLimits)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'opendream.db').resolve()}"

    @property
    def shared(self) -> bool:
        """PostgreSQL: several replicas and workers may share the database."""
        return self.database_url.startswith("postgresql")

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
