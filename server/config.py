"""Server settings: command-line flags over environment variables over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from engine.image_limits import ImageLimits
from engine.limits import RenderLimits


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _env_list(name: str) -> tuple[str, ...]:
    """A comma-separated environment variable as a tuple of its non-empty, stripped items."""
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


def gpu_visible() -> bool:
    """Whether this machine has a GPU the engine will use, told without importing torch (seconds)."""
    if Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists():
        return True
    import platform

    return platform.system() == "Darwin" and platform.machine() == "arm64"  # Apple silicon: MPS


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
    # Hand the admin token to a browser on this machine (only when listening on loopback): docs/security.md.
    local_admin: bool = field(default_factory=lambda: os.environ.get("OPENDREAM_LOCAL_ADMIN", "1") != "0")
    # The edge (server/security.py). Host names, besides loopback ones, that requests may name ("*": any); on a
    # loopback bind a request naming another host is refused (DNS rebinding), on another bind only when set.
    allowed_hosts: tuple[str, ...] = field(default_factory=lambda: _env_list("OPENDREAM_ALLOWED_HOSTS"))
    # Origins (scheme://host[:port]), besides the request's own, that may send writes and open WebSockets.
    allowed_origins: tuple[str, ...] = field(default_factory=lambda: _env_list("OPENDREAM_ALLOWED_ORIGINS"))
    # Let anyone create and import canvases without a token, rate-limited per client address.
    open_creation: bool = field(default_factory=lambda: os.environ.get("OPENDREAM_OPEN_CREATION", "") == "1")
    creations_per_minute: float = 10.0  # anonymous creations per address (with open_creation) ...
    creation_burst: int = 20  # ... and how many may come at once
    max_header_bytes: int = 64 * 1024  # request line and headers of one request (uvicorn's h11 parser)
    header_timeout_s: float = 10.0  # from a request's first byte to the end of its headers
    keep_alive_s: int = 5  # an idle keep-alive connection is closed after this long
    attention_slicing: bool = False  # less GPU memory, a little slower
    vae_tiling: bool = False  # decode large images in tiles
    # Pin thread count and deterministic kernels so replays match bit for bit (costs speed: docs/reproducibility.md)
    reproducible: bool = field(default_factory=lambda: os.environ.get("OPENDREAM_REPRODUCIBLE", "") == "1")
    # Bounds on one render (engine.limits.RenderLimits); None takes the default for the device (GPU or CPU).
    max_pixels: int | None = field(default_factory=lambda: _env_int("OPENDREAM_MAX_PIXELS"))
    max_work: int | None = field(default_factory=lambda: _env_int("OPENDREAM_MAX_WORK"))
    # The model's native side: a larger source is resized into its area ("fit"). None: the family's (512 SD 1.x,
    # 768 SD 2.x-v, 1024 SDXL), or 512 when the family cannot be told before loading.
    working_side: int | None = None
    model_family: str | None = field(default_factory=lambda: os.environ.get("OPENDREAM_MODEL_FAMILY") or None)
    previews: bool = True  # live previews while denoising
    # Cache hits only within a canvas (and what it was forked or imported from): on a server shared by people who
    # must not learn what others render; identical renders on other canvases are computed again.
    private_render_cache: bool = field(default_factory=lambda: os.environ.get("OPENDREAM_PRIVATE_RENDER_CACHE") == "1")
    taesd: str | None = field(default_factory=lambda: os.environ.get("OPENDREAM_TAESD") or None)
    # The model library (server/library.py): checkpoints/, loras/, controlnet/, vae/, embeddings/, models.toml.
    # None: the data directory's models/ (where the built-in models are built too).
    models_root: Path | None = field(
        default_factory=lambda: Path(os.environ["OPENDREAM_MODELS"]) if os.environ.get("OPENDREAM_MODELS") else None
    )
    shutdown_grace_s: float = 5.0  # how long shutdown waits for a render to stop before leaving it behind
    # Live connections (server.live.LiveLimits): per client address, per token, and a client's outbound buffer.
    ws_max_per_address: int = field(default_factory=lambda: _env_int("OPENDREAM_WS_MAX_PER_ADDRESS") or 128)
    ws_max_per_token: int = field(default_factory=lambda: _env_int("OPENDREAM_WS_MAX_PER_TOKEN") or 256)
    ws_outbound_bytes: int = field(default_factory=lambda: _env_int("OPENDREAM_WS_OUTBOUND_BYTES") or 8 * 1024 * 1024)
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

    @cached_property  # reads the model's files: once per settings, not once per request
    def family_native_side(self) -> int:
        from engine.models.families import UnknownFamily, model_capabilities
        from engine.models.spec import InvalidModelSpec

        try:
            family, _ = model_capabilities(self.model, self.model_family)
        except (InvalidModelSpec, UnknownFamily):
            return 512
        return family.native_size if family is not None else 512

    @cached_property
    def render_limits(self) -> RenderLimits:
        gpu = not self.device.startswith("cpu") if self.device is not None else gpu_visible()
        limits = RenderLimits.for_device("gpu" if gpu else "cpu", self.working_side or self.family_native_side)
        overrides = {"max_pixels": self.max_pixels, "max_work": self.max_work}
        return replace(limits, **{key: value for key, value in overrides.items() if value is not None})

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
