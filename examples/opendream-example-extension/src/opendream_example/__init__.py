"""An example Opendream extension. Each operation lives in its own module; `more_operations` shows the
"function returning a list" form of entry point."""

from __future__ import annotations

from engine.operation import Operation
from opendream_example.pixelate import Pixelate
from opendream_example.posterize import Posterize

__all__ = ["Pixelate", "Posterize", "more_operations"]


def more_operations() -> list[type[Operation]]:
    return [Pixelate]
