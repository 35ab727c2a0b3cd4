"""The operations Opendream ships with. Cheap to import: the server builds its registry from this."""

from __future__ import annotations

from engine.operation import Operation, OperationRegistry
from engine.ops.adjust import Adjust
from engine.ops.blank import Blank
from engine.ops.composite import Composite
from engine.ops.controlnet import ControlNet
from engine.ops.controlnet_canny import ControlNetCanny
from engine.ops.crop import Crop
from engine.ops.flatten import Flatten
from engine.ops.img2img import Img2Img
from engine.ops.inpaint import Inpaint
from engine.ops.instruct_pix2pix import InstructPix2Pix
from engine.ops.layer_output import LayerOutput
from engine.ops.magic_wand import MagicWand
from engine.ops.mask import Mask
from engine.ops.outpaint import Outpaint
from engine.ops.resize import Resize
from engine.ops.segment import Segment
from engine.ops.txt2img import Txt2Img
from engine.ops.upload import Upload


def builtin_operations() -> list[type[Operation]]:
    generating: list[type[Operation]] = [
        Txt2Img,
        Img2Img,
        Inpaint,
        Outpaint,
        InstructPix2Pix,
        ControlNetCanny,
        ControlNet,
    ]
    editing: list[type[Operation]] = [
        Upload, Blank, Crop, Resize, Adjust, Composite, Flatten, Mask, MagicWand, Segment
    ]  # fmt: skip
    return [*generating, *editing, LayerOutput]


def default_registry() -> OperationRegistry:
    """Every built-in, registered; those that cannot run here (e.g. segment without SAM) also marked unavailable.

    Unavailable built-ins stay registered so canvases that used them still validate and replay their logs.
    For third-party operations as well, use engine.discovery.load_registry().
    """
    registry = OperationRegistry()
    for operation in builtin_operations():
        registry.register(operation)
        reason = operation.unavailable_reason()
        if reason is not None:
            registry.mark_unavailable(operation.name, reason)
    return registry
