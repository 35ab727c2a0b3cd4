"""Parameter types shared by the operations. Pure pydantic: importing this costs no torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engine.operation import Params
from engine.schedulers import SchedulerName

__all__ = ["Dimension", "Guidance", "Offset", "Resize", "SchedulerName", "Side", "Steps", "Strength"]

# Multiples of 8: the VAE maps 8x8 pixels to one latent cell.
Side = Annotated[int, Field(ge=64, le=2048, multiple_of=8)]
Steps = Annotated[int, Field(ge=1, le=150, description="Denoising steps.")]
Guidance = Annotated[float, Field(ge=0.0, le=30.0, description="How closely to follow the prompt (CFG scale).")]
Strength = Annotated[float, Field(gt=0.0, le=1.0, description="How much to change: 0 keeps the source, 1 repaints.")]

# The editing operations work on any size, not just multiples of 8; 4096 bounds memory (64 MiB as RGBA).
Dimension = Annotated[int, Field(ge=1, le=4096, description="Pixels.")]
Offset = Annotated[int, Field(ge=-8192, le=8192, description="Pixels from the left or top edge.")]

# How a source larger than the model's working size is treated (engine.limits.fit_within).
Resize = Annotated[
    Literal["fit", "none"],
    Field(
        description="fit: a source larger than the model's working size is scaled down into it (aspect kept); "
        "none: rendered at the source's size, within the server's limits."
    ),
]


class LoraRef(Params):
    """One LoRA applied to a render."""

    name: str = Field(min_length=1, max_length=512, description="A LoRA of the server's library (loras/...).")
    weight: float = Field(1.0, ge=-2.0, le=2.0, description="How strongly it applies; 0 turns it off.")


class DiffusionParams(Params):
    """What every generating operation takes besides its own parameters: which model, and which LoRAs."""

    model: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="A model of the server's library (GET /api/models); none: the server's default model.",
    )
    loras: list[LoraRef] = Field(
        default_factory=list, max_length=8, title="LoRAs", description="LoRAs applied to this render only (up to 8)."
    )
