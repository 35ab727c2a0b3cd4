"""How long renders take, measured: seconds per unit of work (pixel·steps), per operation, for queue ETAs."""

from __future__ import annotations

from engine.limits import WorkEstimate


class RenderTimes:
    def __init__(self, smoothing: float = 0.3) -> None:
        self.smoothing = smoothing
        self._per_unit: dict[str, float] = {}
        self._any: float | None = None  # seconds per unit over every diffusion operation, for unseen ones

    def record(self, operation: str, estimate: WorkEstimate | None, seconds: float) -> None:
        units = _units(estimate)
        if units <= 0 or seconds <= 0:
            return
        rate = seconds / units
        previous = self._per_unit.get(operation)
        self._per_unit[operation] = rate if previous is None else previous + self.smoothing * (rate - previous)
        if estimate is not None and estimate.diffusion:
            self._any = rate if self._any is None else self._any + self.smoothing * (rate - self._any)

    def seconds(self, operation: str, estimate: WorkEstimate | None) -> float | None:
        """The expected duration of a render, or None before anything like it was measured."""
        rate = self._per_unit.get(operation)
        if rate is None and estimate is not None and estimate.diffusion:
            rate = self._any
        units = _units(estimate)
        return None if rate is None or units <= 0 else rate * units


def _units(estimate: WorkEstimate | None) -> int:
    if estimate is None:
        return 0
    return max(1, estimate.work)
