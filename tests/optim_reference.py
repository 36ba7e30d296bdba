"""The optimizer step as it was before it was fused (onnxprune 0.x, commit aa278fb): the specification
the fused step in onnxprune/optim is checked against (tests/test_optim.py).

Written for clarity, not speed: the base direction is copied into its own buffer, every per-group sum
is a product of whole tensors summed in float64, and groups are scaled by one pass per factor. The
choice of groups (periods, partition) is the optimizers' own (`choose`), so only the per-step
arithmetic is restated here.
"""

from __future__ import annotations

import math

import torch

from onnxprune.optim import Dhspg, Hesso
from onnxprune.optim.segments import GroupSegments


def sum_products(segments: GroupSegments, pairs) -> torch.Tensor:
    """Row k, column g: sum over group g's elements of a*b for the k-th (a, b) pair (float64)."""
    out = torch.zeros((len(pairs), segments.n_groups), dtype=torch.float64, device=segments.device)
    for view in segments.views:
        for k, (a, b) in enumerate(pairs):
            x, y = a[view.tensor].reshape(view.shape3), b[view.tensor].reshape(view.shape3)
            per_index = (x * y).sum(dim=(0, 2), dtype=torch.float64)
            owned = view.index < segments.n_groups
            out[k].index_add_(0, view.index[owned], per_index[owned])
    return out


def scale_(segments: GroupSegments, tensors, factor: torch.Tensor) -> None:
    """Multiply every slice of group g by factor[g], in place."""
    for view in segments.views:
        tensor = tensors[view.tensor]
        per_index = torch.ones(view.shape3[1], dtype=tensor.dtype, device=tensor.device)
        owned = view.index < segments.n_groups
        per_index[owned] = factor[view.index[owned]].to(tensor.dtype)
        tensor.view(view.shape3).mul_(per_index.view(1, -1, 1))


class ReferenceDirection:
    """sgd/adam/adamw directions into a buffer of their own (torch.optim's arithmetic, op for op)."""

    def __init__(self, settings, params):
        self.settings = settings
        self.steps = 0
        self.direction = {name: torch.zeros_like(x) for name, x in params.items()}
        self.state = {name: torch.zeros_like(x) for name, x in params.items()}
        self.second = {name: torch.zeros_like(x) for name, x in params.items()}

    def compute(self, params, grads, lr):
        s = self.settings
        self.steps += 1
        for name, x in params.items():
            g, d = grads[name], self.direction[name]
            if s.variant == "sgd":
                torch.add(g, x, alpha=s.weight_decay, out=d) if s.weight_decay else d.copy_(g)
                if not s.momentum:
                    continue
                buf = self.state[name]
                if self.steps == 1:
                    buf.copy_(d)
                else:
                    buf.mul_(s.momentum).add_(d, alpha=1 - s.dampening)
                if s.nesterov:
                    d.add_(buf, alpha=s.momentum)
                else:
                    d.copy_(buf)
                continue
            b1, b2 = s.betas
            if s.variant == "adamw" and s.weight_decay:
                x.mul_(1 - lr * s.weight_decay)
                grad = g
            elif s.weight_decay:
                grad = torch.add(g, x, alpha=s.weight_decay, out=d)
            else:
                grad = g
            m, v = self.state[name], self.second[name]
            m.lerp_(grad, 1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            bias1, bias2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
            torch.sqrt(v, out=d).div_(math.sqrt(bias2)).add_(s.eps)
            torch.div(m, d, out=d).div_(bias1)
        return self.direction


class ReferenceHesso(Hesso):
    """HESSO with the step as it was (group choices by Hesso.choose)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.base = ReferenceDirection(self.base.settings, self.params)

    def stats(self):
        from onnxprune.optim.scores import GroupStats

        xx, xg, gg = sum_products(self.segments, [(self.params, self.params), (self.params, self.grads),
                                                  (self.grads, self.grads)])
        return GroupStats(xx, xg, gg, self.segments.counts)

    def step(self, lr: float) -> None:
        from onnxprune.optim.scores import importance

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
        for name, x in self.params.items():
            x.sub_(directions[name], alpha=lr)
        factor = torch.ones(self.layout.n_groups, dtype=torch.float64, device=self.device)
        if pruning:
            factor[self.active] = (T - t - 1) / (T - t)
        factor[self.zero] = 0.0
        if bool(self.zero.any()) or (pruning and bool(self.active.any())):
            scale_(self.segments, self.params, factor)
        if pruning and t == T - 1:
            self.zero |= self.active
            self.active = torch.zeros_like(self.zero)
        self.steps += 1


class ReferenceDhspg(Dhspg):
    """DHSPG with the step as it was (G_p by Dhspg.partition)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.base = ReferenceDirection(self.base.settings, self.params)

    def stats(self):
        return ReferenceHesso.stats(self)

    def step(self, lr: float) -> None:
        s, n = self.settings, self.steps
        if n == s.partition_step and (self.target or self.region_target):
            self.partition()
        directions = self.base.compute(self.params, self.grads, lr)
        factor = torch.ones(self.layout.n_groups, dtype=torch.float64, device=self.device)
        active = self.penalized & ~self.zero
        if n >= s.partition_step and bool(active.any()):
            xx, xd, dd = sum_products(self.segments, [(self.params, self.params), (self.params, directions),
                                                      (directions, directions)])
            norm = xx.sqrt()
            lower = -xd / norm.clamp(min=1e-300)
            upper = -dd * norm / torch.where(xd < 0, xd, -torch.ones_like(xd))
            raised = (s.lmbda_amplify * lower).clamp(min=s.lmbda, max=s.hat_lmbda_coeff * s.lmbda)
            raised = torch.where(raised >= upper, (upper + lower) / 2, raised)
            lam = torch.where(xd < 0, raised, torch.full_like(xd, s.lmbda))
            shrink = torch.where(norm > 0, lr * lam / norm.clamp(min=1e-300), torch.zeros_like(norm))
            factor = torch.where(active, 1 - shrink, factor)
            if n >= s.partition_step + s.half_space_project_steps:
                inner = xx * (1 - shrink) - lr * xd
                self.zero |= active & (inner < s.epsilon * xx)
            if s.finish_step is not None and n >= s.finish_step:
                self.zero |= active
        if bool((factor != 1).any()):
            scale_(self.segments, self.params, factor)
        for name, x in self.params.items():
            x.sub_(directions[name], alpha=lr)
        if bool(self.zero.any()):
            scale_(self.segments, self.params, (~self.zero).double())
        self.steps += 1
