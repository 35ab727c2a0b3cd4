from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.imaging import has_alpha
from engine.operation import BlobInput, Operation, Params

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext


class UploadParams(Params):
    blob: str = BlobInput("The uploaded image (PNG, JPEG or WebP), by the sha256 POST /api/blobs returned.")


class Upload(Operation):
    name = "upload"
    title = "Upload"
    description = "An uploaded image as a layer: RGBA when it has transparency, else RGB, upright (EXIF)."
    category = "input"
    Params = UploadParams

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: UploadParams) -> Image:
        image = ctx.read_image(params.blob)
        return image.convert("RGBA" if has_alpha(image) else "RGB")
