"""Content-addressed render keys: equal keys mean the same pixels, so a key is never rendered twice."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

# Bump when a change to the engine changes pixels for the same inputs: every cached render misses after it.
ENGINE_CACHE_VERSION = 1

# Fingerprint fields that name a model but do not change its pixels (a folder moved keeps its hash).
_NAMING_ONLY = {"model"}


def cache_key(
    operation: str,
    params: Mapping[str, Any],
    seed: int | None,
    input_images: Mapping[str, str],
    fingerprint: Mapping[str, Any],
) -> str:
    """sha256 over the operation, its params with layer references replaced by the sha256 of the images they
    name (so the same inputs hit the cache from any canvas or fork), the seed, and what in the engine's
    fingerprint decides the bits."""
    resolved = {
        name: input_images.get(name, value) if name in input_images else value for name, value in params.items()
    }
    engine = {name: value for name, value in fingerprint.items() if name not in _NAMING_ONLY}
    body = {
        "v": ENGINE_CACHE_VERSION,
        "operation": operation,
        "params": resolved,
        "seed": seed,
        "engine": engine,
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
