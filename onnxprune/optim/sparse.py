"""What HESSO and DHSPG share: parameters and gradients as torch tensors (views of the training
engine's buffers), the base direction, per-group statistics, sticky zero groups, checkpoint state,
and the choice of which groups may go to zero without emptying a family or a tensor."""

from __future__ import annotations

import numpy as np
import torch

from ..space import AxisBudget, ErasingSpace, PruningSpace
from .base import BaseDirection, BaseSettings
from .groups import GroupLayout
from .scores import GroupStats
from .segments import GroupSegments


class GroupSparseOptimizer:
    """Base class: subclasses implement `step(lr)`. `params` and `grads` map names to tensors that are
    updated in place; tensors named in the layout carry groups."""

    #: per-group boolean masks a subclass keeps besides `zero` (saved and restored with the state)
    masks: tuple[str, ...] = ()

    def __init__(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], layout: GroupLayout,
                 space: PruningSpace, base: BaseSettings, target_group_sparsity: float,
                 erasing: ErasingSpace | None = None, target_erase: float = 0.0):
        if not 0 <= target_group_sparsity < 1 or not 0 <= target_erase <= 1:
            raise ValueError(f"target group sparsity must be in [0, 1) and the erased share in [0, 1], got "
                             f"{target_group_sparsity} and {target_erase}")
        self.params, self.grads, self.layout, self.space = params, grads, layout, space
        self.erasing = erasing
        self.base = BaseDirection(base, params)
        device = next(iter(params.values())).device if params else torch.device("cpu")
        self.segments = GroupSegments(layout, {k: tuple(v.shape) for k, v in params.items()}, device)
        self.device = device
        regions = layout.is_region
        self.region_mask = torch.as_tensor(regions, device=device)
        self.target = int(np.floor(target_group_sparsity * int((~regions).sum()) + 1e-9))  # K, channel groups
        self.region_target = int(np.floor(target_erase * int(regions.sum()) + 1e-9))  # regions to erase
        self.zero = torch.zeros(layout.n_groups, dtype=torch.bool, device=device)  # sticky zero groups
        self.steps = 0

    # ------------------------------------------------------------------ statistics
    def stats(self) -> GroupStats:
        """‖x_g‖², ⟨x_g, grad_g⟩, ‖grad_g‖² and element counts of every group."""
        xx, xg, gg = self.segments.sum_products([(self.params, self.params), (self.params, self.grads),
                                                (self.grads, self.grads)])
        return GroupStats(xx, xg, gg, self.segments.counts)

    def group_sparsity(self) -> float:
        """Share of groups that are exactly zero now."""
        return float(self.zero_groups().mean()) if self.layout.n_groups else 0.0

    def zero_groups(self) -> np.ndarray:
        """Boolean per group: all of its parameters are exactly zero now."""
        return (~self.segments.nonzero(self.params)).cpu().numpy()

    # ------------------------------------------------------------------ choosing groups
    def relative_to_family(self, scores: torch.Tensor) -> torch.Tensor:
        """Each group's score divided by the mean score of its family (vectorised)."""
        family = self._family_index
        sums = torch.zeros(int(family.max()) + 1, dtype=scores.dtype, device=scores.device).index_add_(0, family, scores)
        counts = torch.bincount(family).to(scores.dtype)
        means = sums / counts.clamp(min=1)
        return scores / torch.where(means[family] > 0, means[family], torch.ones_like(scores))

    @property
    def _family_index(self) -> torch.Tensor:
        """Per group: its family's bucket (all regions share one: they compare with each other)."""
        families = np.maximum(self.layout.family_of_group, -1)
        _, index = np.unique(families, return_inverse=True)
        return torch.as_tensor(index, device=self.device)

    def choose_regions(self, scores: torch.Tensor, count: int, excluded: torch.Tensor) -> torch.Tensor:
        """Up to `count` lowest-scored region groups outside `excluded` that may be erased together with
        the excluded ones (no merge loses every input)."""
        chosen = torch.zeros_like(self.zero)
        if count <= 0 or self.erasing is None:
            return chosen
        family_of = self.layout.family_of_group
        excluded_np = excluded.cpu().numpy()
        erased = [-1 - int(family_of[g]) for g in np.flatnonzero(excluded_np & (family_of < 0))]
        values = scores.detach().cpu().numpy()
        taken = 0
        for g in np.lexsort((np.arange(len(values)), values)):
            if taken >= count:
                break
            if family_of[g] >= 0 or excluded_np[g]:
                continue
            region = -1 - int(family_of[g])
            if self.erasing.admissible(erased + [region]):
                erased.append(region)
                chosen[int(g)] = True
                taken += 1
        return chosen

    def choose(self, scores: torch.Tensor, count: int, excluded: torch.Tensor, divisible: int = 1) -> torch.Tensor:
        """Boolean mask of about `count` lowest-scored groups outside `excluded`, such that with the
        excluded ones gone no family and no tensor axis is emptied. With `divisible` > 1 every family
        keeps a multiple of `divisible` groups: picks that break a block are given back, and whole
        blocks (of the families whose next `divisible` candidates score lowest) fill the shortfall while
        that brings the total closer to `count`. Runs once per pruning period, never per step."""
        chosen = torch.zeros_like(self.zero)
        if count <= 0:
            return chosen
        budget = AxisBudget(self.space)
        family_of, local = self.layout.family_of_group, self.layout.local_group
        excluded_np = excluded.cpu().numpy()
        removed: dict[int, int] = {}
        for g in np.flatnonzero(excluded_np & (family_of >= 0)):  # region groups are not channels
            budget.take(self.space.family(int(family_of[g])), int(local[g]))
            removed[int(family_of[g])] = removed.get(int(family_of[g]), 0) + 1
        values = scores.detach().cpu().numpy()
        order = [int(g) for g in np.lexsort((np.arange(len(values)), values)) if not excluded_np[g] and family_of[g] >= 0]
        keep_at_least = max(1, divisible)
        picked: dict[int, list[int]] = {}
        taken = 0
        for g in order:
            if taken >= count:
                break
            family = self.space.family(int(family_of[g]))
            if removed.get(family.id, 0) + len(picked.get(family.id, ())) >= family.size - keep_at_least:
                continue
            if budget.take(family, int(local[g])):
                picked.setdefault(family.id, []).append(g)
                taken += 1
        if divisible > 1:
            for family_id, groups in picked.items():
                kept = self.space.family(family_id).size - removed.get(family_id, 0) - len(groups)
                for g in groups[len(groups) - min((-kept) % divisible, len(groups)):]:
                    budget.give_back(self.space.family(family_id), int(local[g]))
                    groups.remove(g)
            self._fill_blocks(picked, removed, order, values, count, divisible, budget)
        for groups in picked.values():
            if groups:
                chosen[groups] = True
        return chosen

    def _fill_blocks(self, picked: dict[int, list[int]], removed: dict[int, int], order: list[int], values,
                     count: int, divisible: int, budget: AxisBudget) -> None:
        """Add blocks of `divisible` groups, cheapest block first, while that brings the total closer to
        `count` (see `choose`)."""
        family_of, local = self.layout.family_of_group, self.layout.local_group
        candidates: dict[int, list[int]] = {}
        for g in order:  # per family, its groups not picked yet, lowest score first
            if g not in picked.get(int(family_of[g]), ()):
                candidates.setdefault(int(family_of[g]), []).append(g)
        taken = sum(len(groups) for groups in picked.values())
        while count - taken >= (divisible + 1) // 2:
            best, best_score = None, None
            for family_id, left in candidates.items():
                size = self.space.family(family_id).size
                kept = size - removed.get(family_id, 0) - len(picked.get(family_id, ()))
                if len(left) < divisible or kept - divisible < divisible:
                    continue
                score = float(np.mean(values[left[:divisible]]))
                if best_score is None or score < best_score:
                    best, best_score = family_id, score
            if best is None:
                return
            block, candidates[best] = candidates[best][:divisible], candidates[best][divisible:]
            family = self.space.family(best)
            done = []
            for g in block:
                if not budget.take(family, int(local[g])):
                    break
                done.append(g)
            if len(done) < len(block):  # an axis would empty: this family takes no more blocks
                for g in done:
                    budget.give_back(family, int(local[g]))
                candidates[best] = []
                continue
            picked.setdefault(best, []).extend(block)
            taken += divisible

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything a resumed run needs besides the parameters."""
        return {"steps": self.steps, "base": self.base.state_dict(),
                **{name: getattr(self, name).cpu() for name in ("zero", *self.masks)}}

    def load_state_dict(self, data: dict) -> None:
        """Restore what `state_dict` returned."""
        self.steps = int(data["steps"])
        self.base.load_state_dict(data["base"])
        for name in ("zero", *self.masks):
            getattr(self, name).copy_(data[name])

    def step(self, lr: float) -> None:  # pragma: no cover - abstract
        """One update of every parameter with learning rate `lr`."""
        raise NotImplementedError
