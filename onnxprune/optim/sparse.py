"""What HESSO and DHSPG share: parameters and gradients as torch tensors (views of the training
engine's buffers), the base direction, per-group statistics, sticky zero groups, checkpoint state,
and the choice of which groups may go to zero without emptying a family or a tensor."""

from __future__ import annotations

import numpy as np
import torch

from ..choose import choose_groups, pick_admissible, ranked
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
                 base: BaseSettings, target_group_sparsity: float, target_erase: float = 0.0):
        if not 0 <= target_group_sparsity < 1 or not 0 <= target_erase <= 1:
            raise ValueError(f"target group sparsity must be in [0, 1) and the erased share in [0, 1], got "
                             f"{target_group_sparsity} and {target_erase}")
        self.params, self.grads, self.layout = params, grads, layout
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
        if count <= 0:
            return chosen
        excluded_np = excluded.cpu().numpy()
        regions = self.layout.is_region
        order = ranked(scores.detach().cpu().numpy(), regions & ~excluded_np)
        picked = pick_admissible(order, count, self.layout.table.exclusive, np.flatnonzero(excluded_np & regions))
        chosen[picked] = True
        return chosen

    def choose(self, scores: torch.Tensor, count: int, excluded: torch.Tensor, divisible: int = 1) -> torch.Tensor:
        """Boolean mask of about `count` lowest-scored channel groups outside `excluded`, such that with
        the excluded ones gone no family and no tensor axis is emptied, kept counts multiples of
        `divisible` (`choose.choose_groups`, the choice `select` makes too). Runs once per pruning
        period, never per step."""
        chosen = choose_groups(self.layout.table, scores.detach().cpu().numpy(), count, excluded.cpu().numpy(),
                               divisible)
        return torch.as_tensor(chosen, device=self.device)

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
