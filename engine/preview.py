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
# 16-channel latents: ComfyUI's factors and biases for SD 3 and FLUX.1 (latents as the transformer sees them,
# i.e. shifted and scaled).
LATENT_RGB_FACTORS["sd3"] = (
    (-0.0922, -0.0175, 0.0749),
    (0.0311, 0.0633, 0.0954),
    (0.1994, 0.0927, 0.0458),
    (0.0856, 0.0339, 0.0902),
    (0.0587, 0.0272, -0.0496),
    (-0.0006, 0.1104, 0.0309),
    (0.0978, 0.0306, 0.0427),
    (-0.0042, 0.1038, 0.1358),
    (-0.0194, 0.0020, 0.0669),
    (-0.0488, 0.0130, -0.0268),
    (0.0922, 0.0988, 0.0951),
    (-0.0278, 0.0524, -0.0542),
    (0.0332, 0.0456, 0.0895),
    (-0.0069, -0.0030, -0.0810),
    (-0.0596, -0.0465, -0.0293),
    (-0.1448, -0.1463, -0.1189),
)
LATENT_RGB_FACTORS["flux"] = (
    (-0.0346, 0.0244, 0.0681),
    (0.0034, 0.0210, 0.0687),
    (0.0275, -0.0668, -0.0433),
    (-0.0174, 0.0160, 0.0617),
    (0.0859, 0.0721, 0.0329),
    (0.0004, 0.0383, 0.0115),
    (0.0405, 0.0861, 0.0915),
    (-0.0236, -0.0185, -0.0259),
    (-0.0245, 0.0250, 0.1180),
    (0.1008, 0.0755, -0.0421),
    (-0.0515, 0.0201, 0.0011),
    (0.0428, -0.0012, -0.0036),
    (0.0817, 0.0765, 0.0749),
    (-0.1264, -0.0522, -0.1103),
    (-0.0280, -0.0881, -0.0499),
    (-0.1262, -0.0982, -0.0778),
)
LATENT_RGB_BIAS: dict[str, tuple[float, float, float]] = {
    "sd3": (0.2394, 0.2135, 0.1925),
    "flux": (-0.0329, -0.0718, -0.0851),
}
# FLUX hands its step callback packed latents: (batch, tokens, channels x 2 x 2), one token per 2x2 patch.
LATENT_PACKING: dict[str, int] = {"flux": 2}
VAE_SCALE = 8  # pixels per latent cell, every family here

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


def unpack_latents(latents: torch.Tensor, patch: int, pixel_size: tuple[int, int] | None) -> torch.Tensor | None:
    """Packed latents (batch, tokens, channels x patch x patch) as (batch, channels, height, width): the grid
    from the picture's size (width, height), or square; None when the tokens do not fit it."""
    batch, tokens, packed = latents.shape
    if pixel_size is not None:
        rows, cols = (side // (VAE_SCALE * patch) for side in (pixel_size[1], pixel_size[0]))
    else:
        rows = cols = round(tokens**0.5)
    if rows * cols != tokens or packed % (patch * patch):
        return None
    channels = packed // (patch * patch)
    grid = latents.reshape(batch, rows, cols, channels, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(batch, channels, rows * patch, cols * patch)


def latents_to_rgb(latents: torch.Tensor, family: str = "sd1") -> Image.Image:
    """The first latent of a batch as an RGB picture, by the family's linear projection."""
    factors = LATENT_RGB_FACTORS.get(family, LATENT_RGB_FACTORS["sd1"])
    latent = latents[0].detach().float().cpu()
    channels = min(latent.shape[0], len(factors))
    matrix = torch.tensor(factors[:channels], dtype=torch.float32)  # C x 3
    rgb = torch.einsum("chw,cr->hwr", latent[:channels], matrix)
    rgb = rgb + torch.tensor(LATENT_RGB_BIAS.get(family, (0.0, 0.0, 0.0)), dtype=torch.float32)
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
        self.pixel_size: tuple[int, int] | None = None  # (width, height) of the render: unpacks FLUX latents

    def step(self, step: int, total: int, latents: Any) -> None:
        patch = LATENT_PACKING.get(self.family)
        if patch is not None and isinstance(latents, torch.Tensor) and latents.ndim == 3:
            latents = unpack_latents(latents, patch, self.pixel_size)
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
        taesd_channels = getattr(getattr(self.taesd, "config", None), "latent_channels", latents.shape[1])
        if self.taesd is not None and taesd_channels == latents.shape[1]:  # else a TAESD of another family
            with torch.inference_mode():
                decoded = self.taesd.decode(latents[:1].to(self.taesd.device, self.taesd.dtype)).sample
            image = decoded_to_rgb(decoded)
        else:
            image = latents_to_rgb(latents, self.family)
        if max(image.size) > self.max_side:
            image.thumbnail((self.max_side, self.max_side), Image.Resampling.BILINEAR)
        return image
