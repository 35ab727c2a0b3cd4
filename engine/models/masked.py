"""txt2img and img2img with an inpainting checkpoint (a 9-channel UNet that also reads a mask and the masked
image), as A1111 runs them: through the inpaint pipeline with the whole frame masked. The masked image is then
empty (mid-grey once normalised), which is what such a model sees for "paint everything"."""

from __future__ import annotations

from typing import Any

from PIL import Image as PILImage


class WholeFrameInpaint:
    """A txt2img / img2img pipeline over an inpaint pipeline; everything else is the inpaint pipeline's."""

    def __init__(self, inpaint: Any) -> None:
        self._inpaint = inpaint

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inpaint, name)

    def __call__(
        self,
        prompt: Any = None,
        negative_prompt: Any = None,
        image: PILImage.Image | None = None,
        width: int | None = None,
        height: int | None = None,
        strength: float = 1.0,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        generator: Any = None,
        output_type: str = "pil",
        callback_on_step_end: Any = None,
        callback_on_step_end_tensor_inputs: Any = None,
        **extra: Any,
    ) -> Any:
        if image is None:  # txt2img: nothing to keep
            if width is None or height is None:
                side = self._inpaint.unet.config.sample_size * self._inpaint.vae_scale_factor
                width, height = width or side, height or side
            image = PILImage.new("RGB", (width, height), (127, 127, 127))
            strength = 1.0
        size = (width or image.width, height or image.height)
        arguments: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "image": image,
            "mask_image": PILImage.new("L", image.size, 255),
            "width": size[0],
            "height": size[1],
            "strength": strength,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "generator": generator,
            "output_type": output_type,
            "callback_on_step_end": callback_on_step_end,
            **extra,
        }
        if callback_on_step_end_tensor_inputs is not None:
            arguments["callback_on_step_end_tensor_inputs"] = callback_on_step_end_tensor_inputs
        return self._inpaint(**arguments)
