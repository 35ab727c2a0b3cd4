"""Content hashes of model weights, cached by (path, size, mtime) so a multi-GB file is read only once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".bin", ".pt", ".pth", ".gguf")
_CHUNK = 1 << 20
_lock = threading.Lock()


def default_hash_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opendream" / "weight-hashes.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """sha256 per weight file, persisted as JSON; keyed by real path, size and mtime (a changed file misses)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._entries is None:
            self._entries = {}
            if self.path is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._entries = dict(json.loads(self.path.read_text()))
        return self._entries

    def sha256(self, path: Path) -> str:
        real = path.resolve()
        stat = real.stat()
        key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
        with _lock:
            entries = self._load()
            if key in entries:
                return entries[key]
        value = file_sha256(real)
        with _lock:
            entries[key] = value
            self._save(entries)
        return value

    def _save(self, entries: dict[str, str]) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hashes-")
            with os.fdopen(fd, "w") as handle:
                json.dump(entries, handle, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only cache only costs re-hashing next time


def hash_model_path(path: Path, cache: HashCache) -> str:
    """One hash for a model folder or file: every file's relative name, size and sha256.

    Weight files go through the cache; configs and tokenizer files are small and hashed directly.
    """
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        relative = file.name if file == path else file.relative_to(path).as_posix()
        if any(part.startswith(".") for part in Path(relative).parts):
            continue  # hub cache locks, editor droppings
        if file.suffix in WEIGHT_SUFFIXES:
            content = cache.sha256(file)
        elif file.stat().st_size <= 16 * _CHUNK:
            content = file_sha256(file)
        else:
            continue  # large non-weight blobs (sample images, docs) do not change what renders
        digest.update(f"{relative}\0{file.stat().st_size}\0{content}\n".encode())
    return "sha256:" + digest.hexdigest()
