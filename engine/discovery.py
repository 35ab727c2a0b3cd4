"""Building the operation registry: built-ins, then installed extensions, then a directory of extension files.

Extensions are Python code that already lies on this machine: a package installed into the environment
(found through its `opendream.operations` entry points) or `.py` files in a directory the operator names.
Nothing here fetches code from anywhere. A broken extension never stops the server: whatever failed (an import
error, an exception while loading, an invalid class, a duplicate name) is logged and reported through
`registry.unavailable()` (GET /api/operations lists it), and everything else loads.

Cheap to import: no torch. Loading an extension runs its module code, so keep extensions' imports light too.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.builtins import default_registry
from engine.operation import Operation, OperationRegistry, Params

ENTRY_POINT_GROUP = "opendream.operations"
EXTENSIONS_DIR_ENV = "OPENDREAM_EXTENSIONS_DIR"
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

log = logging.getLogger("opendream.extensions")


class InvalidExtension(Exception):
    """What an extension exposes is not a usable operation; the message says why."""


def load_registry(extensions_dir: Path | None = None, entry_points: bool = True) -> OperationRegistry:
    """Built-ins + entry points in group `opendream.operations` + `.py` files in `extensions_dir`.

    `extensions_dir` defaults to $OPENDREAM_EXTENSIONS_DIR (unset: no directory). Never raises for a broken
    extension: see `registry.unavailable()`.
    """
    registry = default_registry()
    if entry_points:
        for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            source = f"entry point {entry_point.name} = {entry_point.value}"
            _load(registry, entry_point.name, source, entry_point.load)
    if extensions_dir is None and os.environ.get(EXTENSIONS_DIR_ENV):
        extensions_dir = Path(os.environ[EXTENSIONS_DIR_ENV])
    if extensions_dir is not None:
        load_directory(registry, extensions_dir)
    return registry


def load_directory(registry: OperationRegistry, directory: Path) -> None:
    """Register the operations of every `*.py` file in `directory` (not recursive; `_*.py` files are skipped)."""
    if not directory.is_dir():
        _fail(registry, str(directory), f"extensions directory {directory} does not exist or is not a directory")
        return
    for path in sorted(directory.glob("*.py")):
        if not path.name.startswith(("_", ".")):
            _load(registry, path.name, f"extension file {path}", lambda path=path: _import_file(path))


def operations_from(loaded: Any) -> list[Any]:
    """The operations an entry point or extension file stands for.

    An Operation subclass; a module (its `operations` list, or else every Operation subclass defined in it that
    declares a `name` or `Params` — classes with neither are taken for shared base classes); a list or tuple;
    or a function returning any of these.
    """
    if isinstance(loaded, ModuleType):
        if hasattr(loaded, "operations"):
            return operations_from(loaded.operations)
        return [
            value
            for value in vars(loaded).values()
            if inspect.isclass(value)
            and issubclass(value, Operation)
            and value.__module__ == loaded.__name__
            and ("name" in vars(value) or "Params" in vars(value))
        ]
    if isinstance(loaded, list | tuple):
        return list(loaded)
    if inspect.isclass(loaded):
        return [loaded]
    if callable(loaded):
        return operations_from(loaded())
    raise InvalidExtension(f"expected an Operation subclass, a module, a list or a function, got {loaded!r}")


def check_operation(candidate: Any) -> type[Operation]:
    """`candidate` if it is a usable operation class; else InvalidExtension saying what is wrong."""
    if not (inspect.isclass(candidate) and issubclass(candidate, Operation)):
        raise InvalidExtension(f"{candidate!r} is not a subclass of engine.operation.Operation")
    label = f"{candidate.__module__}.{candidate.__qualname__}"
    name = getattr(candidate, "name", None)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidExtension(f"{label}: `name` must be a lowercase identifier like 'posterize', not {name!r}")
    if not isinstance(getattr(candidate, "title", None), str) or not candidate.title:
        raise InvalidExtension(f"{label}: `title` must be a non-empty string")
    params = getattr(candidate, "Params", None)
    if not (inspect.isclass(params) and issubclass(params, Params)):
        raise InvalidExtension(f"{label}: `Params` must be a subclass of engine.operation.Params, not {params!r}")
    if candidate.run is Operation.run:
        raise InvalidExtension(f"{label}: does not implement run(ctx, inputs, params)")
    try:
        candidate.describe()  # builds the JSON Schema the API serves
    except Exception as exc:
        raise InvalidExtension(f"{label}: its parameters give no JSON Schema: {type(exc).__name__}: {exc}") from exc
    return candidate


def _load(registry: OperationRegistry, key: str, source: str, load: Callable[[], Any]) -> None:
    try:
        candidates = operations_from(load())
        if not candidates:
            raise InvalidExtension("it defines no operations")
    except (Exception, SystemExit) as exc:  # an extension calling sys.exit() must not stop the server either
        _fail(registry, key, f"{source} failed to load: {_describe(exc)}")
        return
    _register_all(registry, key, source, candidates)


def _register_all(registry: OperationRegistry, key: str, source: str, candidates: Iterable[Any]) -> None:
    for index, candidate in enumerate(candidates):
        try:
            operation = check_operation(candidate)
        except InvalidExtension as exc:
            # Reported under its own name when it has a free one, else under its source and its place in it.
            name = getattr(candidate, "name", None)
            if isinstance(name, str) and NAME.fullmatch(name) and name not in registry:
                where = name
            else:
                where = f"{key}:{candidate.__qualname__ if inspect.isclass(candidate) else f'[{index}]'}"
            _fail(registry, where, f"{source}: {exc}")
            continue
        existing = registry.get(operation.name)
        if existing is not None:
            # Keyed apart from the name: the operation that got there first stays available.
            _fail(
                registry,
                f"{operation.name} ({source})",
                f"{source}: an operation named {operation.name!r} is already registered "
                f"({existing.__module__}.{existing.__qualname__}); this one was skipped",
            )
            continue
        registry.register(operation)
        log.info("operation %s loaded from %s", operation.name, source)
        try:
            reason = operation.unavailable_reason()
        except Exception as exc:
            reason = f"unavailable_reason() failed: {_describe(exc)}"
        if reason is not None:
            _fail(registry, operation.name, reason)


def _import_file(path: Path) -> ModuleType:
    # A name unique to the file's directory, so two directories may both hold an `effects.py`.
    digest = hashlib.sha256(str(path.parent.resolve()).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)
    module_name = f"opendream_extension_{digest}_{stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidExtension(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs: pydantic resolves postponed annotations through it.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({Path(exc.filename or '?').name}, line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}"


def _fail(registry: OperationRegistry, key: str, reason: str) -> None:
    log.warning("extension unavailable: %s", reason)
    registry.mark_unavailable(key, reason)
