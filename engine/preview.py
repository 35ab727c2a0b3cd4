"""Live previews while denoising: a cheap look at the latents every few steps, as ComfyUI, InvokeAI and A1111
show them.

Two ways, per model family: a fixed linear projection of the latent channels onto RGB (the factors ComfyUI
publishes in comfy/latent_formats.py, fitted against each family's VAE; a matrix product on a 64x64 grid,
microseconds), or TAESD (diffusers' `AutoencoderTiny`, a ~1 M-parameter decoder) when one is configured.
Previews are throttled (`min_interval_s`), small (at most `max_side` pixels), JPEG-encoded, and never enter
the log or the render cache.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

# latent channel -> (R, G, B) weight; rows per latent channel. SD 2.x shares SD 1.x's VAE.
LATENT_RGB_FACTORS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "sd1": (
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    ),
    "sdxl": (
        (0.3920, 0.4054, 0.4549),
        (-0.2634, -0.0196, 0.0653),
        (0.0568, 0.1687, -0.0755),
        (-0.3112, -0.2359, -0.2076),
    ),
}
LATENT_RGB_FACTORS["sd2"] = LATENT_RGB_FACTORS["sd1"]

PreviewCallback = Callable[[int, int, "PreviewImage"], None]


@dataclass(frozen=True, slots=True)
class PreviewImage:
    image: Image.Image

    def jpeg_data_url(self, quality: int = 70, max_bytes: int = 6000) -> str:
        return self.encode(quality, max_bytes)[0]

    def encode(self, quality: int = 70, max_bytes: int = 6000) -> tuple[str, tuple[int, int]]:
        """A JPEG data URL of at most about `max_bytes` (a PostgreSQL NOTIFY to other replicas carries < 8000),
        and the size it has: a preview too detailed for it loses quality first, then size."""
        image = self.image
        while True:
            for attempt in (quality, 50, 35):
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=attempt)
                url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
                if len(url) <= max_bytes:
                    return url, image.size
            if max(image.size) <= 32:
                return url, image.size
            image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.BILINEAR)


def latents_to_rgb(latents: torch.Tensor, family: str = "sd1") -> Image.Image:
    """The first latent of a batch as an RGB picture, by the family's linear projection."""
    factors = LATENT_RGB_FACTORS.get(family, LATENT_RGB_FACTORS["sd1"])
    latent = latents[0].detach().float().cpu()
    channels = min(latent.shape[0], len(factors))
    matrix = torch.tensor(factors[:channels], dtype=torch.float32)  # C x 3
    rgb = torch.einsum("chw,cr->hwr", latent[:channels], matrix)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB")


def decoded_to_rgb(decoded: torch.Tensor) -> Image.Image:
    """A decoder's output in [-1, 1], first of the batch, as an RGB picture."""
    pixels = ((decoded[0].detach().float().cpu().permute(1, 2, 0) + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(pixels.numpy(), "RGB")


class Previewer:
    """Turns the latents of a step into a preview, at most once per `min_interval_s`."""

    def __init__(
        self,
        callback: PreviewCallback,
        family: str = "sd1",
        taesd: Any = None,
        min_interval_s: float = 0.25,
        max_side: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback = callback
        self.family = family
        self.taesd = taesd
        self.min_interval_s = min_interval_s
        self.max_side = max_side
        self.clock = clock
        self._last = float("-inf")
        self.sent = 0

    def step(self, step: int, total: int, latents: Any) -> None:
        if step >= total or not isinstance(latents, torch.Tensor) or latents.ndim != 4:
            return  # the last step is followed by the real image
        now = self.clock()
        if now - self._last < self.min_interval_s:
            return
        self._last = now
        image = self.render(latents)
        self.sent += 1
        self.callback(step, total, PreviewImage(image))

    def render(self, latents: torch.Tensor) -> Image.Image:
        if self.taesd is not None:
            with torch.inference_mode():
                decoded = self.taesd.decode(latents[:1].to(self.taesd.device, self.taesd.dtype)).sample
            image = decoded_to_rgb(decoded)
        else:
            image = latents_to_rgb(latents, self.family)
        if max(image.size) > self.max_side:
            image.thumbnail((self.max_side, self.max_side), Image.Resampling.BILINEAR)
        return image
