"""Per-group reductions and per-group scaling on torch tensors, without a loop over groups.

Each (tensor, axis) that carries groups is viewed as (before, axis, after): a reduction sums over
`before` and `after` (one kernel per tensor), and the per-index sums are scattered into per-group
sums with `index_add_`. Scaling multiplies the same view by a per-index factor gathered from a
per-group factor. Tensors are updated in place, so views of onnxruntime's buffers stay live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .groups import GroupLayout


@dataclass(frozen=True)
class _AxisView:
    tensor: str
    shape3: tuple[int, int, int]  # (elements before the axis, axis size, elements after)
    positions: torch.Tensor  # axis indices that belong to a group
    groups: torch.Tensor  # their global group ids


class GroupSegments:
    """Segment operations over the groups of `layout`, for tensors shaped as in `shapes`."""

    def __init__(self, layout: GroupLayout, shapes: dict[str, tuple[int, ...]], device: torch.device | str = "cpu"):
        self.n_groups = layout.n_groups
        self.device = torch.device(device)
        views = []
        for entry in layout.axes:
            shape = tuple(shapes[entry.tensor])
            if entry.axis is None:  # the whole tensor is one group's
                shape3 = (1, 1, math.prod(shape))
            else:
                shape3 = (math.prod(shape[:entry.axis]), shape[entry.axis], math.prod(shape[entry.axis + 1:]))
            owned = torch.as_tensor(entry.group_of_index, device=self.device)
            positions = torch.nonzero(owned >= 0).flatten()
            views.append(_AxisView(entry.tensor, shape3, positions, owned[positions]))
        self._views = tuple(views)
        self.tensors = tuple(dict.fromkeys(v.tensor for v in views))  # tensors that carry groups
        self.counts = torch.as_tensor(layout.element_counts(shapes), dtype=torch.float64, device=self.device)

    def sum_products(self, pairs: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]) -> torch.Tensor:
        """Row k, column g: sum over group g's elements of a*b for the k-th (a, b) pair (float64)."""
        out = torch.zeros((len(pairs), self.n_groups), dtype=torch.float64, device=self.device)
        for view in self._views:
            for k, (a, b) in enumerate(pairs):
                x, y = a[view.tensor].reshape(view.shape3), b[view.tensor].reshape(view.shape3)
                per_index = (x * y).sum(dim=(0, 2), dtype=torch.float64)
                out[k].index_add_(0, view.groups, per_index[view.positions])
        return out

    def scale_(self, tensors: dict[str, torch.Tensor], factor: torch.Tensor) -> None:
        """Multiply every slice of group g by factor[g], in place (indices of no group keep their value)."""
        for view in self._views:
            tensor = tensors[view.tensor]
            per_index = torch.ones(view.shape3[1], dtype=tensor.dtype, device=tensor.device)
            per_index[view.positions] = factor[view.groups].to(tensor.dtype)
            tensor.view(view.shape3).mul_(per_index.view(1, -1, 1))
