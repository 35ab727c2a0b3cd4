"""Sampler names the operations accept, mapped to diffusers schedulers.

Every render gets a fresh scheduler made from the model's own scheduler config: schedulers keep per-run state
(timesteps, step index, multistep history), so sharing one between renders would make results depend on
what ran before.

The same name means the nearest sampler of the model's kind, by prediction type: the diffusion samplers for
epsilon / v-prediction models (SD 1.x, 2.x, XL), flow-matching samplers for rectified-flow models (SD 3, FLUX).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from engine.defaults import LABELS_KEY

SchedulerId = Literal["ddim", "euler", "euler_a", "dpm++", "dpm++_karras", "pndm", "unipc"]
SCHEDULER_NAMES: tuple[str, ...] = get_args(SchedulerId)
# What the form shows for each id (the names the samplers go by in other Stable Diffusion tools); the ids stay
# what params, workflows and the render cache record.
SCHEDULER_LABELS: MappingProxyType[str, str] = MappingProxyType(
    {
        "ddim": "DDIM",
        "euler": "Euler",
        "euler_a": "Euler Ancestral",
        "dpm++": "DPM++ 2M",
        "dpm++_karras": "DPM++ 2M Karras",
        "pndm": "PNDM",
        "unipc": "UniPC",
    }
)
# The type of an operation's `scheduler` param: one of the ids, with the labels in its JSON Schema
# (`x-opendream-labels`, as the model choices have: client/js/schema.js).
SchedulerName = Annotated[SchedulerId, Field(json_schema_extra={LABELS_KEY: dict(SCHEDULER_LABELS)})]

SchedulerTable = MappingProxyType[str, tuple[str, MappingProxyType[str, Any]]]


def _table(entries: dict[str, tuple[str, dict[str, Any]]]) -> SchedulerTable:
    return MappingProxyType({name: (cls, MappingProxyType(overrides)) for name, (cls, overrides) in entries.items()})


DIFFUSION_SCHEDULERS = _table(
    {
        "ddim": ("DDIMScheduler", {}),
        "euler": ("EulerDiscreteScheduler", {}),
        "euler_a": ("EulerAncestralDiscreteScheduler", {}),
        "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
        "dpm++_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
        # skip_prk_steps: the PRK warm-up needs more steps than a short preview has
        "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
        "unipc": ("UniPCMultistepScheduler", {}),
    }
)
# Flow matching: every name is FlowMatchEulerDiscreteScheduler, varied where a variant exists. diffusers' SD 3 /
# FLUX img2img and inpaint pipelines noise the source with `scheduler.scale_noise`, which only the FlowMatch
# schedulers have, and FLUX passes its own sigmas to `set_timesteps`, which DPMSolverMultistepScheduler does not
# take: DPM-Solver / UniPC with flow sigmas would run txt2img only, so "dpm++", "ddim", "pndm" and "unipc" fall
# back to the deterministic flow Euler sampler (the flow counterpart of DDIM).
FLOW_SCHEDULERS = _table(
    {
        "ddim": ("FlowMatchEulerDiscreteScheduler", {}),
        "euler": ("FlowMatchEulerDiscreteScheduler", {}),
        "euler_a": ("FlowMatchEulerDiscreteScheduler", {"stochastic_sampling": True}),
        "dpm++": ("FlowMatchEulerDiscreteScheduler", {}),
        "dpm++_karras": ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True}),
        "pndm": ("FlowMatchEulerDiscreteScheduler", {}),
        "unipc": ("FlowMatchEulerDiscreteScheduler", {}),
    }
)
# prediction type (engine.models.families.ModelFamily.prediction_type) -> the samplers that fit it
SCHEDULERS_BY_PREDICTION: MappingProxyType[str, SchedulerTable] = MappingProxyType(
    {"epsilon": DIFFUSION_SCHEDULERS, "v_prediction": DIFFUSION_SCHEDULERS, "flow": FLOW_SCHEDULERS}
)


def make_scheduler(name: str, config: Any, prediction_type: str = "epsilon") -> Any:
    import diffusers

    table = SCHEDULERS_BY_PREDICTION.get(prediction_type, DIFFUSION_SCHEDULERS)
    try:
        class_name, overrides = table[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r} (known: {', '.join(SCHEDULER_NAMES)})") from None
    return getattr(diffusers, class_name).from_config(config, **overrides)
