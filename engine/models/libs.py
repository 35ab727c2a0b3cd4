"""Small adapters to the diffusers/transformers versions in use, and silencing their console chatter."""

from __future__ import annotations

import functools
import threading
from types import ModuleType

_importing = threading.Lock()


def diffusers_quiet() -> ModuleType:
    """diffusers, with its and transformers' progress bars off and the pipeline classes imported.

    Our own progress callback reports steps; tqdm bars from loading and saving only clutter a server's log.
    Importing the SD pipelines makes transformers warn once that torchvision is missing for an image
    processor that only the safety checker uses (we run without one), so that import runs at error level.
    One thread imports, the others wait: diffusers' lazy module, first touched from two threads at once (the
    model loading while a render keys its cache), can answer "no attribute StableDiffusionPipeline".
    """
    with _importing:
        return _diffusers_quiet()


@functools.cache
def _diffusers_quiet() -> ModuleType:
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    level = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    try:
        _ = diffusers.StableDiffusionPipeline, diffusers.StableDiffusionInstructPix2PixPipeline
    finally:
        transformers.utils.logging.set_verbosity(level)
    return diffusers


@functools.cache
def dtype_kwarg() -> str:
    # Recent diffusers renamed from_pretrained's `torch_dtype` to `dtype` and warn about the old name.
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"
