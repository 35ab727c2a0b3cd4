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
    for path, image in input_images.items():
        # a nested reference ("layers.0.layer": a composite's or an outpaint's) names its image too, or a
        # re-rendered input (or another canvas's layer of the same id) would hit the old render
        head, *rest = path.split(".")
        if rest and head in resolved:
            resolved[head] = _replaced(resolved[head], rest, image)
    engine = {name: value for name, value in fingerprint.items() if name not in _NAMING_ONLY}
    body = {
        "v": ENGINE_CACHE_VERSION,
        "operation": operation,
        "params": resolved,
        "seed": seed,
        "engine": engine,
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _replaced(value: Any, path: list[str], image: str) -> Any:
    """`value` (JSON params) with the item at `path` (keys and list indices) replaced by `image`, copied."""
    if not path:
        return image
    key, *rest = path
    if isinstance(value, list) and key.isdigit() and int(key) < len(value):
        items = list(value)
        items[int(key)] = _replaced(items[int(key)], rest, image)
        return items
    if isinstance(value, dict) and key in value:
        return {**value, key: _replaced(value[key], rest, image)}
    return value
