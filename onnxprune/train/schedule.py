"""Learning-rate schedules: constant, step, cosine, each with an optional linear warm-up.

The rate is computed for every step and handed to the optimizer (onnxruntime's own LinearLRScheduler
swaps its arguments; we do not use it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Schedule = Literal["constant", "step", "cosine"]


@dataclass(frozen=True)
class LearningRate:
    """lr(step) for a run of `total` steps."""

    base: float
    total: int
    kind: Schedule = "cosine"
    warmup: int = 0
    step_size: int = 0  # "step": decay every step_size steps (default: a third of the run)
    gamma: float = 0.1  # "step": decay factor
    floor: float = 0.0  # "cosine": the last rate, as a share of base

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "step", "cosine"):
            raise ValueError(f"unknown schedule {self.kind!r} (constant, step, cosine)")

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.base * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.base
        if self.kind == "step":
            size = self.step_size or max(1, self.total // 3)
            return self.base * self.gamma ** ((step - self.warmup) // size)
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.base * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress)))
