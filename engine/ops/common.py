"""Parameter types shared by the generating operations. Pure pydantic: importing this costs no torch."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from engine.schedulers import SchedulerName

__all__ = ["Guidance", "SchedulerName", "Side", "Steps", "Strength"]

# Multiples of 8: the VAE maps 8x8 pixels to one latent cell.
Side = Annotated[int, Field(ge=64, le=2048, multiple_of=8)]
Steps = Annotated[int, Field(ge=1, le=150, description="Denoising steps.")]
Guidance = Annotated[float, Field(ge=0.0, le=30.0, description="How closely to follow the prompt (CFG scale).")]
Strength = Annotated[float, Field(gt=0.0, le=1.0, description="How much to change: 0 keeps the source, 1 repaints.")]
