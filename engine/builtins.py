"""The operations Opendream ships with. Cheap to import: the server builds its registry from this."""

from __future__ import annotations

from engine.operation import Operation, OperationRegistry
from engine.ops.controlnet_canny import ControlNetCanny
from engine.ops.img2img import Img2Img
from engine.ops.inpaint import Inpaint
from engine.ops.instruct_pix2pix import InstructPix2Pix
from engine.ops.txt2img import Txt2Img


def builtin_operations() -> list[type[Operation]]:
    return [Txt2Img, Img2Img, Inpaint, InstructPix2Pix, ControlNetCanny]


def default_registry() -> OperationRegistry:
    registry = OperationRegistry()
    for operation in builtin_operations():
        registry.register(operation)
    return registry
