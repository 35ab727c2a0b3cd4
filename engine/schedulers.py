"""Sampler names the operations accept, mapped to diffusers schedulers.

Every render gets a fresh scheduler made from the model's own scheduler config: schedulers keep per-run state
(timesteps, step index, multistep history), so sharing one between renders would make results depend on
what ran before.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

SchedulerName = Literal["ddim", "euler", "euler_a", "dpm++", "dpm++_karras", "pndm", "unipc"]
SCHEDULER_NAMES: tuple[str, ...] = get_args(SchedulerName)


def make_scheduler(name: str, config: Any) -> Any:
    import diffusers

    table: dict[str, tuple[str, dict[str, Any]]] = {
        "ddim": ("DDIMScheduler", {}),
        "euler": ("EulerDiscreteScheduler", {}),
        "euler_a": ("EulerAncestralDiscreteScheduler", {}),
        "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
        "dpm++_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
        # skip_prk_steps: the PRK warm-up needs more steps than a short preview has
        "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
        "unipc": ("UniPCMultistepScheduler", {}),
    }
    try:
        class_name, overrides = table[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r} (known: {', '.join(SCHEDULER_NAMES)})") from None
    return getattr(diffusers, class_name).from_config(config, **overrides)
