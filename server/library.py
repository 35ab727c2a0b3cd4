"""The server's model library (engine.models.library) and its two routes.

    GET  /api/models          every model, LoRA and companion: kind, family, native size, what it can run,
                              size, whether it is loaded, and why it cannot be used if it cannot
    POST /api/models/rescan   the admin's: scan the models directory again (new files, removed files), and
                              offer what it holds in the operations' schemas

Opened at start from files alone (no torch); the schemas' `model` and `loras` choices come from it
(engine.defaults.library_choices), so a command naming a model the library lacks is refused when decided.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from engine.models.library import ModelLibrary
    from server.config import Settings
    from server.services import Services

log = logging.getLogger("opendream")
PLACEHOLDER_MODELS = frozenset({"builtin:tiny", "builtin:tiny-sdxl", "builtin:tiny-sd3", "builtin:tiny-flux"})


def library_root(settings: Settings) -> Path:
    return settings.models_root or settings.models_dir


def open_library(settings: Settings) -> ModelLibrary:
    from engine.models.fingerprint import HashCache
    from engine.models.library import ModelLibrary

    root = library_root(settings)
    library = ModelLibrary(
        settings.model,
        root,
        family_override=settings.model_family,
        hash_cache=HashCache(settings.models_dir / "weight-hashes.json"),
    )
    usable = [entry for entry in library.entries() if entry.usable]
    log.info("opendream: model library %s: %d usable of %d entries", root, len(usable), len(library.entries()))
    for entry in library.entries():
        if entry.problem and entry.source != "server":
            log.warning("opendream: %s %s cannot be used: %s", entry.kind, entry.name, entry.problem)
    return library


def describe_library(library: ModelLibrary, loaded: list[str]) -> dict[str, object]:
    return {
        "models": library.describe(loaded),
        "default": library.default,
        # builtin:tiny is a stand-in with random weights: the editor says so, and how to add a real model
        "placeholder": library.default in PLACEHOLDER_MODELS,
    }


def _loaded_specs(request: Request) -> list[str]:
    renders = request.app.state.services.renders
    return [] if renders is None else renders.loaded_models()


async def list_models(request: Request) -> Response:
    services = request.app.state.services
    return JSONResponse(describe_library(services.library, _loaded_specs(request)))


async def rescan_models(request: Request) -> Response:
    from server.api import grant_for

    await grant_for(request, None, "admin")
    services = request.app.state.services
    await rescan(services)
    if services.bus is not None:  # the other replicas and the workers scan it too
        await services.bus.announce_models()
    return JSONResponse(describe_library(services.library, _loaded_specs(request)))


async def rescan(services: Services) -> None:
    """Scan the models directory again: the library, the operations' `model` / `loras` choices, and the loaded
    models whose part files changed (unloaded: their next render loads them with the parts there now). One scan
    at a time: a burst of rescans (an admin's, other replicas' notices) never scans the library concurrently."""
    from server.services import install_family_defaults

    async with services.rescanning:
        if services.library is not None:
            await asyncio.to_thread(services.library.scan)
        install_family_defaults(services.settings, services.operations, services.library)
    if services.renders is not None:
        services.renders.unload_changed_models()
