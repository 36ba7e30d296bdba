"""DHSPG (OTOv2) and, over erasable regions, H2SPG (OTOv3): implicit group sparsity by a group penalty
and a half-space projection (ALGORITHMS.md).

At `partition_step` the groups are split once: the K·(1 + tolerance) highest-scored by
0.5·normalised cos(x_g, grad_g) + 0.5·normalised 1/avg|x_g| form G_p, to be driven to zero (kept
counts rounded to group_divisible). Every step after that, until every G_p group is zero (not merely
K of them, so the zero set is exactly G_p and keeps the rounding), each remaining G_p group moves by
-lr·λ_g·x_g/‖x_g‖ and, from `partition_step + half_space_project_steps` on, is projected to zero when
the step leaves the half-space ⟨x̂_g, x_g⟩ ≥ epsilon·‖x_g‖². λ_g is `lmbda`, raised when the base
direction d points away from zero (⟨x_g, d_g⟩ < 0, so -lr·d grows the group) to
lmbda_amplify·(-⟨x_g, d_g⟩)/‖x_g‖ within [lmbda, hat_lmbda_coeff·lmbda]; if that reaches
-‖d_g‖²‖x_g‖/⟨x_g, d_g⟩ (where the penalised step would stop being a descent direction) it takes the
midpoint of the two bounds, as the OTOv2 code does. Zero groups stay zero.

`finish_step` (ours, not OTOv2's): from that step on, G_p groups the penalty has not yet zeroed are
projected to zero at once. OTOv2 trains for hundreds of epochs; in a budget of a few, with a decaying
learning rate, the penalty alone stops short (Fashion-MNIST, 3 epochs, cosine: group sparsity 0.433 of
0.5, widths off the group_divisible multiples). The steps after `finish_step` recover from the cut, as
HESSO's do after its last period.

The penalty is applied without a copy of x: x̂ = x·(1 - lr·λ_g/‖x_g‖) - lr·d, and
⟨x̂_g, x_g⟩ = ‖x_g‖²(1 - lr·λ_g/‖x_g‖) - lr·⟨d_g, x_g⟩ comes from per-group sums taken before the step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .base import BaseSettings
from .fused import FusedSteps, fusable
from .groups import GroupLayout
from .scores import criterion, normalized
from .sparse import GroupSparseOptimizer


@dataclass(frozen=True)
class DhspgSettings:
    """DHSPG's hyper-parameters (defaults after the OTOv2 tutorials)."""

    target_group_sparsity: float = 0.5
    tolerance: float = 0.0  # G_p holds K·(1 + tolerance) groups
    lmbda: float = 1e-3
    lmbda_amplify: float = 20.0
    hat_lmbda_coeff: float = 1000.0
    epsilon: float = 0.9
    partition_step: int = 0
    half_space_project_steps: int = 0
    group_divisible: int = 1  # G_p leaves every family a multiple of this (kept exact once all of G_p is zero)
    target_erase: float = 0.0  # share of erasable regions admitted to G_p (H2SPG: only admissible sets)
    finish_step: int | None = None  # from here on, what remains of G_p is projected to zero


class Dhspg(GroupSparseOptimizer):
    """DHSPG over the groups of `layout` (see module docstring)."""

    masks = ("penalized",)  # G_p

    def __init__(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], layout: GroupLayout,
                 base: BaseSettings | None = None, settings: DhspgSettings | None = None, compiled: bool = False):
        settings = settings or DhspgSettings()
        base = base or BaseSettings()
        super().__init__(params, grads, layout, base, settings.target_group_sparsity, settings.target_erase)
        self.settings = settings
        self.penalized = torch.zeros_like(self.zero)  # G_p
        self._any_penalized = False  # on the host: zero groups and the penalty exist only once G_p does
        # the penalty steps' passes fused and compiled (`fused.py`), where the kernels cover this optimizer
        self.fused = None
        if compiled and not fusable(base):
            warnings.warn("DHSPG: the compiled step covers SGD with momentum (no dampening, Nesterov or weight "
                          "decay); this base optimizer's steps run eager", stacklevel=2)
        elif compiled:
            try:
                self.fused = FusedSteps(self.segments, {k: tuple(v.shape) for k, v in params.items()}, base.momentum)
            except Exception as error:  # noqa: BLE001 - a torch without torch.compile for this Python, say
                warnings.warn(f"DHSPG: no compiled step ({_one_line(error)}); the eager step runs", stacklevel=2)

    def partition(self) -> None:
        """Pick G_p from the current parameters and gradients."""
        stats = self.stats()
        avg = stats.xx.sqrt() / stats.count.clamp(min=1)
        inverse = torch.where(avg > 0, 1 / avg.clamp(min=1e-300), torch.zeros_like(avg))
        inverse[avg == 0] = inverse.max() if bool((avg > 0).any()) else 1.0  # zero groups rank first
        scores = 0.5 * normalized(criterion(stats, "cosine_similarity") - 1) + 0.5 * normalized(inverse)
        count = min(self.layout.n_groups, int(round(self.target * (1 + self.settings.tolerance))))
        # choose() takes the lowest scores: negate to take the highest. Regions are admitted in that order
        # only while no merge would lose every input (H2SPG's hierarchy constraint, our reading).
        self.penalized = self.choose(-scores, count, self.region_mask.clone(), self.settings.group_divisible) | \
            self.choose_regions(-scores, self.region_target, torch.zeros_like(self.zero))

    def step(self, lr: float) -> None:
        """One DHSPG step. Only the partition reads values back to the host; every other step queues its
        work on the device and returns (a group projected to zero is known on the device alone)."""
        s, n = self.settings, self.steps
        if n == s.partition_step and (self.target or self.region_target):
            self.partition()
            self._any_penalized = bool(self.penalized.any())
        fused = self.fused is not None and self._any_penalized and n >= s.partition_step and self.base.steps >= 1 \
            and (s.finish_step is None or n < s.finish_step)
        if fused and self._fused_step(lr):
            return
        directions = self.base.compute(self.params, self.grads, lr)
        if not self._any_penalized or n < s.partition_step:
            self.segments.step_(self.params, directions, lr)
            self.steps += 1
            return
        active = self.penalized & ~self.zero
        factor = None
        if s.finish_step is not None and n >= s.finish_step:
            self.zero |= active  # the rest of G_p goes now: no penalty to compute
        else:
            xx, xd, dd = self.segments.sum_products([(self.params, self.params), (self.params, directions),
                                                    (directions, directions)])
            factor = self._penalty(xx, xd, dd, active, lr, n)
        # (x·factor − lr·d)·keep: the base step moves zero groups too, keep puts them back
        self.segments.step_(self.params, directions, lr, before=factor, after=(~self.zero).double())
        self.steps += 1

    def _fused_step(self, lr: float) -> bool:
        """A penalty step in two compiled passes (`fused.FusedSteps`): the momentum direction with the
        per-group sums, then the update; the same arithmetic as the eager step. False where the kernels
        could not be built (no C++ compiler for torch.compile on CPU, say): said once, and this step and
        every later one run eager."""
        if not self.fused.built:
            try:
                self.fused.build(self.params)
            except Exception as error:  # noqa: BLE001 - torch.compile's own exception types; nothing was changed
                warnings.warn(f"DHSPG: the compiled step could not be built ({_one_line(error)}); the eager step "
                              "runs instead", stacklevel=2)
                self.fused = None
                return False
        xx, xd, dd = self.fused.direction_and_sums(self.params, self.grads, self.base.state)
        self.base.steps += 1  # what `base.compute` counts
        active = self.penalized & ~self.zero
        factor = self._penalty(xx, xd, dd, active, lr, self.steps)
        self.fused.step_(self.params, self.base.state, lr, factor, (~self.zero).double())
        self.steps += 1
        return True

    def _penalty(self, xx: torch.Tensor, xd: torch.Tensor, dd: torch.Tensor, active: torch.Tensor, lr: float,
                 n: int) -> torch.Tensor:
        """Each group's factor this step (1 - lr·λ_g/‖x_g‖ for the active ones), and the groups the
        half-space projection zeroes (into `zero`), from the per-group sums."""
        s = self.settings
        norm = xx.sqrt()
        lower = -xd / norm.clamp(min=1e-300)
        upper = -dd * norm / torch.where(xd < 0, xd, -torch.ones_like(xd))
        raised = (s.lmbda_amplify * lower).clamp(min=s.lmbda, max=s.hat_lmbda_coeff * s.lmbda)
        raised = torch.where(raised >= upper, (upper + lower) / 2, raised)
        lam = torch.where(xd < 0, raised, torch.full_like(xd, s.lmbda))
        shrink = torch.where(norm > 0, lr * lam / norm.clamp(min=1e-300), torch.zeros_like(norm))
        factor = torch.where(active, 1 - shrink, torch.ones_like(shrink))
        if n >= s.partition_step + s.half_space_project_steps:
            inner = xx * (1 - shrink) - lr * xd  # <x̂_g, x_g>
            self.zero |= active & (inner < s.epsilon * xx)
        return factor

    def load_state_dict(self, data: dict) -> None:
        """Restore what `state_dict` returned."""
        super().load_state_dict(data)
        self._any_penalized = bool(self.penalized.any())


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else 'no message'}"
