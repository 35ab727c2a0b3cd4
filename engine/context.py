"""What an operation's `run` gets besides its inputs and params: the model, the seed, progress, cancellation,
and uploaded blobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from engine.blobs import DEFAULT_LIMITS, BlobReader, ImageLimits, decode_image, read_blob
from engine.errors import RenderCancelled
from engine.limits import RenderLimits, ResizeRule, working_size

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.models.loader import ModelHandle, PipelineKind
    from engine.preview import Previewer

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]
StageCallback = Callable[[str], None]  # "prepare" | "denoise" | "decode"


@dataclass
class RunContext:
    model: ModelHandle
    seed: int | None = None
    progress_callback: ProgressCallback | None = None
    cancelled: CancelCheck | None = None
    # sha256 -> bytes, e.g. the server's blob store's `get`; None when the render may read no uploads
    blob_reader: BlobReader | None = None
    limits: RenderLimits | None = None
    stage_callback: StageCallback | None = None
    previewer: Previewer | None = None
    _stage: str | None = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def pipeline(self, kind: PipelineKind, scheduler: str | None = None) -> Any:
        return self.model.pipeline(kind, scheduler)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with the render's seed (+ offset for a second independent stream).

        Noise is always drawn on the CPU, as ComfyUI and InvokeAI do: CUDA and MPS generators produce other
        numbers for the same seed, so a seed would otherwise mean a different picture on every device.
        diffusers draws on the generator's device and moves the tensor to the model's device.
        """
        if self.seed is None:
            raise ValueError("this render has no seed; operations that draw noise must set uses_seed = True")
        return torch.Generator("cpu").manual_seed(self.seed + offset)

    def read_blob(self, sha256: str) -> bytes:
        """The bytes of an uploaded blob; MissingBlob without a reader or when absent, InvalidBlob if corrupt."""
        return read_blob(self.blob_reader, sha256)

    def read_image(self, sha256: str, limits: ImageLimits = DEFAULT_LIMITS) -> Image:
        """An uploaded blob decoded as an image under explicit limits (see engine.blobs)."""
        return decode_image(self.read_blob(sha256), limits)

    def working_image(self, image: Image, rule: ResizeRule) -> Image:
        """`image` brought into the model's working size by `rule` (engine.limits.fit_within)."""
        from PIL import Image as PILImage

        size = working_size(image.size, rule, self.limits)
        return image if size == image.size else image.resize(size, PILImage.Resampling.LANCZOS)

    def stage(self, name: str) -> None:
        if self.stage_callback is not None and name != self._stage:
            self._stage = name
            self.stage_callback(name)

    def progress(self, step: int, total: int) -> None:
        if self.progress_callback is not None:
            self.progress_callback(step, total)

    def check_cancelled(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise RenderCancelled("render cancelled")

    def step_callback(self) -> Callable[..., dict[str, Any]]:
        """For diffusers' `callback_on_step_end`: reports progress, then stops between steps if cancelled."""

        def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            total = int(pipe.num_timesteps)
            self.check_cancelled()
            self.progress(step + 1, total)
            if self.previewer is not None:
                self.previewer.step(step + 1, total, callback_kwargs.get("latents"))
            return callback_kwargs

        return on_step_end

    def call(self, pipe: Any, **arguments: Any) -> Any:
        """Run a diffusers pipeline with `arguments` and the context's own (diffusers_kwargs), less what this
        pipeline's __call__ does not take (engine.models.loader.call_arguments): one call for every family."""
        from PIL import Image as PILImage

        from engine.models.loader import call_arguments

        size = (arguments["width"], arguments["height"]) if "width" in arguments else None
        multiple = self.model.family.size_multiple
        grid = None if size is None else (max(multiple, size[0] // multiple * multiple),
                                          max(multiple, size[1] // multiple * multiple))  # fmt: skip
        if grid is not None:
            # a transformer family takes sides in multiples of 16 (SD 3 refuses others): render on that grid
            # (the pipeline resizes its input images to it), and bring the pictures back to the size asked for
            arguments.update(width=grid[0], height=grid[1])
        if self.previewer is not None:  # packed latents (FLUX) are unpacked by the picture's size
            self.previewer.pixel_size = grid
        output = pipe(**call_arguments(pipe, **arguments, **self.diffusers_kwargs()))
        if size is not None and grid != size:
            output.images = [image.resize(size, PILImage.Resampling.LANCZOS) for image in output.images]
        return output

    def diffusers_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every diffusers pipeline call takes from the context."""
        kwargs: dict[str, Any] = {"generator": self.generator(), "callback_on_step_end": self.step_callback()}
        if self.previewer is not None:
            kwargs["callback_on_step_end_tensor_inputs"] = ["latents"]
        return kwargs
