"""HESSO: explicit group sparsity by telescoping the chosen groups to exact zero (ALGORITHMS.md).

Pruning runs in `pruning_periods` periods of T = pruning_steps // periods steps, starting at
`start_pruning_step`. At the first step of each period the lowest-scored groups not yet pruned
become active (the period's quota of the K = target·groups total; the last period takes the
remainder); during the period every parameter takes the base step and the active groups are scaled
by (T - t - 1)/(T - t), which reaches exactly zero at the period's last step. Pruned groups stay zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import BaseSettings
from .groups import GroupLayout
from .scores import DEFAULT_MIX, importance
from .sparse import GroupSparseOptimizer


@dataclass(frozen=True)
class HessoSettings:
    """HESSO's schedule and criteria."""

    target_group_sparsity: float = 0.5
    start_pruning_step: int = 0
    pruning_steps: int = 1
    pruning_periods: int = 1
    group_divisible: int = 1
    criteria: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    # Divide each group's score by its family's mean score, so families are pruned by how their groups
    # compare with each other rather than by their scale (a head of 3x16x64 weights always outweighs
    # one FFN channel; without this, global ranking never picks heads). Our addition to HESSO.
    per_family: bool = True
    target_erase: float = 0.0  # share of the erasable regions to erase (their groups join the same periods)

    def __post_init__(self) -> None:
        if self.pruning_periods < 1 or self.pruning_steps < self.pruning_periods:
            raise ValueError(f"HESSO needs 1 <= pruning_periods <= pruning_steps (got {self.pruning_periods} periods "
                             f"over {self.pruning_steps} steps)")


class Hesso(GroupSparseOptimizer):
    """HESSO over the groups of `layout` (see module docstring)."""

    masks = ("active",)  # the groups shrinking in the current period

    def __init__(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], layout: GroupLayout,
                 base: BaseSettings | None = None, settings: HessoSettings | None = None):
        settings = settings or HessoSettings()
        super().__init__(params, grads, layout, base or BaseSettings(), settings.target_group_sparsity,
                         settings.target_erase)
        self.settings = settings
        self.period_length = settings.pruning_steps // settings.pruning_periods  # T
        self.active = torch.zeros_like(self.zero)
        self._any_zero = self._any_active = False

    def _quota(self, period: int, target: int, done: int) -> int:
        """Groups to activate at the start of `period`: its share of `target`, plus what earlier periods
        could not take (the last period takes the remainder)."""
        periods = self.settings.pruning_periods
        due = target if period == periods - 1 else (target // periods) * (period + 1)
        return due - done

    def step(self, lr: float) -> None:
        """One HESSO step. Only the first step of a period reads values back to the host (to choose
        groups); the others queue their work on the device and return."""
        s, n, T = self.settings, self.steps, self.period_length
        directions = self.base.compute(self.params, self.grads, lr)
        period, t = divmod(n - s.start_pruning_step, T) if n >= s.start_pruning_step else (-1, 0)
        pruning = 0 <= period < s.pruning_periods
        if pruning and t == 0 and (self.target or self.region_target):
            self.zero |= self.active
            scores = importance(self.stats(), s.criteria)
            if s.per_family:
                scores = self.relative_to_family(scores)
            regions = self.region_mask
            channel_quota = self._quota(period, self.target, int((self.zero & ~regions).sum()))
            region_quota = self._quota(period, self.region_target, int((self.zero & regions).sum()))
            self.active = self.choose(scores, channel_quota, self.zero | regions, s.group_divisible) | \
                self.choose_regions(scores, region_quota, self.zero)
            self._note_masks()
        if self._any_zero or (pruning and self._any_active):
            factor = torch.ones(self.layout.n_groups, dtype=torch.float64, device=self.device)
            if pruning:
                factor.masked_fill_(self.active, (T - t - 1) / (T - t))
            factor.masked_fill_(self.zero, 0.0)
            self.segments.step_(self.params, directions, lr, after=factor)  # (x - lr·d)·factor
        else:
            self.segments.step_(self.params, directions, lr)
        if pruning and t == T - 1:
            self.zero |= self.active
            self.active = torch.zeros_like(self.zero)
            self._any_zero, self._any_active = self._any_zero or self._any_active, False
        self.steps += 1

    def _note_masks(self) -> None:
        """Whether any group is zero or active, kept on the host (asked only where the host decides anyway)."""
        self._any_zero, self._any_active = bool(self.zero.any()), bool(self.active.any())

    def load_state_dict(self, data: dict) -> None:
        """Restore what `state_dict` returned."""
        super().load_state_dict(data)
        self._note_masks()
