"""Per-group reductions and per-group updates on torch tensors, without a loop over groups.

Each (tensor, axis) that carries groups is viewed as (before, axis, after). A reduction gives one sum
per axis index in one pass over the tensor, and the per-index sums of every view reach their groups
through a single `index_add_`. An update multiplies the view by a per-index factor, gathered for every
view at once from a per-group factor. Tensors are updated in place, so views of onnxruntime's buffers
stay live, and nothing here reads a value back to the host (no `.item()`, no boolean indexing), so a
step on CUDA never waits for the device.

The optimizer step is bound by memory traffic: each pass over the parameters costs about as much as
the whole arithmetic, so the passes are counted (benchmarks/optimizer_step.py measures them against
torch's SGD). Sums of squares use `vector_norm`, which reads once and allocates nothing. Sums of
products of two tensors are taken in chunks on CPU, so that the product stays in cache: a product of
whole tensors allocated (and page-faulted) a buffer of the tensor's size every step, which made DHSPG
9.6x SGD. Sums are accumulated in the tensors' precision (float32 or float64; torch's cascade
summation) and returned as float64: the groups' statistics only steer the step, they never decide
whether a group is zero (`nonzero` reads the values themselves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .groups import GroupLayout

#: elements per chunk when a product is summed on CPU: two operand chunks and their product (3 MiB in
#: float32) stay in the cache of one core, and a chunk is large enough for the call overhead not to count
CHUNK = 1 << 18


@dataclass(frozen=True)
class AxisView:
    """One (tensor, axis) that carries groups, seen as `shape3` = (before, axis, after); `index[i]` is the
    group of axis index i, or n_groups where i belongs to no group."""

    tensor: str
    shape3: tuple[int, int, int]
    index: torch.Tensor


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
            owner = torch.as_tensor(entry.group_of_index, dtype=torch.int64, device=self.device)
            views.append(AxisView(entry.tensor, shape3, torch.where(owner >= 0, owner, self.n_groups)))
        self.views = tuple(views)
        self.tensors = tuple(dict.fromkeys(v.tensor for v in views))  # tensors that carry groups
        # per tensor, its views (a tensor of an erasable region's group may carry channel groups as well)
        self._views_of = {name: [v for v in views if v.tensor == name] for name in self.tensors}
        # every view's axis indices end to end: one gather spreads a per-group factor over all of them,
        # one index_add_ collects their sums into groups
        self._index = torch.cat([v.index for v in views]) if views else torch.zeros(0, dtype=torch.int64)
        self._owned = torch.nonzero(self._index < self.n_groups).flatten()
        self._owner = self._index[self._owned]
        self._sizes = [v.shape3[1] for v in views]
        self.counts = torch.as_tensor(layout.element_counts(shapes), dtype=torch.float64, device=self.device)
        self._scratch: dict[torch.dtype, torch.Tensor] = {}

    # ------------------------------------------------------------------ reductions
    def sum_products(self, pairs: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]) -> torch.Tensor:
        """Row k, column g: sum over group g's elements of a*b for the k-th (a, b) pair (float64). A pair
        whose two sides are the same tensor is a sum of squares (one read)."""
        columns = []
        for a, b in pairs:
            parts = [self._per_index(a[v.tensor].reshape(v.shape3), b[v.tensor].reshape(v.shape3)) for v in self.views]
            columns.append(torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=self.device))
        return self._to_groups(torch.stack(columns, dim=1)).T

    def nonzero(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per group: True where any of its elements is not exactly zero (exact: the largest magnitude of
        each index is compared with zero, so values whose squares underflow still count)."""
        parts = [torch.linalg.vector_norm(tensors[v.tensor].reshape(v.shape3), ord=math.inf, dim=(0, 2)).double()
                 for v in self.views]
        if not parts:
            return torch.zeros(self.n_groups, dtype=torch.bool, device=self.device)
        return self._to_groups(torch.cat(parts).unsqueeze(1))[:, 0] > 0

    def _to_groups(self, per_index: torch.Tensor) -> torch.Tensor:
        """(indices, k) per-index sums -> (n_groups, k) per-group sums."""
        out = torch.zeros((self.n_groups, per_index.shape[1]), dtype=torch.float64, device=self.device)
        return out.index_add_(0, self._owner, per_index[self._owned])

    def _per_index(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum of x*y over axes 0 and 2 of two (before, axis, after) views, float64."""
        accumulate = torch.float64 if x.dtype == torch.float64 else torch.float32
        if x.data_ptr() == y.data_ptr() and x.stride() == y.stride() and x.dtype == y.dtype:
            return torch.linalg.vector_norm(x, dim=(0, 2), dtype=accumulate).double().square()
        before, size, after = x.shape
        if x.device.type != "cpu" or x.numel() <= CHUNK or (before > 1 and size * after > CHUNK):
            # one product of the whole view: on CUDA the caching allocator hands back the same block every step
            return torch.sum(x * y, dim=(0, 2), dtype=accumulate).double()
        scratch = self._scratch.get(x.dtype)
        if scratch is None:
            scratch = self._scratch[x.dtype] = torch.empty(CHUNK, dtype=x.dtype)
        if before == 1:  # chunks of whole rows of the axis
            out = torch.empty(size, dtype=accumulate)
            rows = max(1, CHUNK // after)
            if rows * after > CHUNK:  # a single row is longer than a chunk: one product of the whole view
                return torch.sum(x * y, dim=(0, 2), dtype=accumulate).double()
            for start in range(0, size, rows):
                stop = min(size, start + rows)
                product = torch.mul(x[0, start:stop], y[0, start:stop], out=scratch[:(stop - start) * after].view(-1, after))
                torch.sum(product, dim=1, dtype=accumulate, out=out[start:stop])
            return out.double()
        out = torch.zeros(size, dtype=torch.float64)  # chunks along `before`, partial sums added up
        rows = CHUNK // (size * after)
        for start in range(0, before, rows):
            stop = min(before, start + rows)
            product = torch.mul(x[start:stop], y[start:stop], out=scratch[:(stop - start) * size * after].view(-1, size, after))
            out += torch.sum(product, dim=(0, 2), dtype=accumulate).double()
        return out

    # ------------------------------------------------------------------ updates
    def _multipliers(self, factor: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
        """Per view, factor[group of each index] (1 for indices of no group) shaped (1, axis, 1)."""
        extended = torch.cat([factor.to(dtype), torch.ones(1, dtype=dtype, device=factor.device)])
        spread = extended[self._index]
        return [part.view(1, -1, 1) for part in torch.split(spread, self._sizes)]

    def scale_(self, tensors: dict[str, torch.Tensor], factor: torch.Tensor) -> None:
        """Multiply every slice of group g by factor[g], in place (indices of no group keep their value)."""
        multipliers = {}
        for position, view in enumerate(self.views):
            tensor = tensors[view.tensor]
            if tensor.dtype not in multipliers:
                multipliers[tensor.dtype] = self._multipliers(factor, tensor.dtype)
            tensor.view(view.shape3).mul_(multipliers[tensor.dtype][position])

    def step_(self, params: dict[str, torch.Tensor], directions: dict[str, torch.Tensor], lr: float,
              before: torch.Tensor | None = None, after: torch.Tensor | None = None) -> None:
        """x ← (x·before[g] − lr·d)·after[g] for every parameter, in place (None: a factor of 1; tensors
        without groups take x − lr·d).

        Passes over memory: x − lr·d is one (read x and d, write x). With `after` alone, it is followed by
        one multiplication (the arithmetic of x.sub_ then x.mul_). With `before` too, x·(before·after)
        comes first and x − lr·d·after is one addcmul, the same two passes (a tensor with two views,
        which an erasable region's group can give, takes the three steps one by one)."""
        plain = [name for name in params if name not in self._views_of or (before is None and after is None)]
        if plain:
            torch._foreach_add_([params[n] for n in plain], [directions[n] for n in plain], alpha=-lr)
        if before is None and after is None:
            return
        index = {id(v): i for i, v in enumerate(self.views)}
        cache: dict[tuple[str, torch.dtype], list[torch.Tensor]] = {}

        def multipliers(which: str, factor: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
            if (which, dtype) not in cache:
                cache[(which, dtype)] = self._multipliers(factor, dtype)
            return cache[(which, dtype)]

        both = before * after if before is not None and after is not None else None
        for name, views in self._views_of.items():
            x, d = params[name], directions[name]
            if before is None:
                x.sub_(d, alpha=lr)
                for v in views:
                    x.view(v.shape3).mul_(multipliers("after", after, x.dtype)[index[id(v)]])
            elif len(views) == 1 and after is not None:
                v = views[0]
                x.view(v.shape3).mul_(multipliers("both", both, x.dtype)[index[id(v)]])
                x.view(v.shape3).addcmul_(d.view(v.shape3), multipliers("after", after, x.dtype)[index[id(v)]], value=-lr)
            else:
                for v in views:
                    x.view(v.shape3).mul_(multipliers("before", before, x.dtype)[index[id(v)]])
                x.sub_(d, alpha=lr)
                for v in views if after is not None else ():
                    x.view(v.shape3).mul_(multipliers("after", after, x.dtype)[index[id(v)]])
