from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PIL import Image as PILImage
from pydantic import Field

from engine.operation import WIDGET_KEY, Operation, Params
from engine.ops.common import Dimension

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext

COLOUR_PATTERN = r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"


def parse_colour(colour: str) -> tuple[int, ...]:
    """ "#rrggbb" -> (r, g, b); "#rrggbbaa" -> (r, g, b, a)."""
    digits = colour.removeprefix("#")
    return tuple(int(digits[i : i + 2], 16) for i in range(0, len(digits), 2))


class BlankParams(Params):
    width: Dimension = 512
    height: Dimension = 512
    colour: str = Field(
        "#ffffff",
        pattern=COLOUR_PATTERN,
        description='"#rrggbb" (an opaque RGB layer) or "#rrggbbaa" (an RGBA layer).',
        json_schema_extra={WIDGET_KEY: "colour"},
    )


class Blank(Operation):
    name = "blank"
    title = "Blank"
    description = "A layer of one colour."
    category = "input"
    Params = BlankParams

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: BlankParams) -> Image:
        colour = parse_colour(params.colour)
        return PILImage.new("RGBA" if len(colour) == 4 else "RGB", (params.width, params.height), colour)
