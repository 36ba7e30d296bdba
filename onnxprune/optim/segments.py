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

#: elements per chunk and thread on CPU: the operands of a few consecutive ops on one chunk (1 MiB each in
#: float32) stay in cache between the ops, and a chunk is large enough for the call overhead not to count
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
        self.views_of = {name: [v for v in views if v.tensor == name] for name in self.tensors}
        # every view's axis indices end to end: one gather spreads a per-group factor over all of them,
        # one index_add_ collects their sums into groups
        self._index = torch.cat([v.index for v in views]) if views else torch.zeros(0, dtype=torch.int64)
        self._owned = torch.nonzero(self._index < self.n_groups).flatten()
        self._owner = self._index[self._owned]
        self._sizes = [v.shape3[1] for v in views]
        self.counts = torch.as_tensor(layout.element_counts(shapes), dtype=torch.float64, device=self.device)
        self._scratch: dict[torch.dtype, torch.Tensor] = {}
        self._chunk_lists: dict[tuple[int, int, str], list[tuple[slice, slice]]] = {}

    # ------------------------------------------------------------------ chunks
    def _chunks(self, position: int, device: torch.device) -> list[tuple[slice, slice]]:
        """Contiguous pieces (slices of before and axis) of view `position` on which consecutive ops run
        one after the other, so that what the first op wrote is still in cache for the next: blocks of
        rows of the axis (before == 1) or of the leading axis. One piece, the whole view, on CUDA (each op
        is one kernel) or where a single row is larger than a chunk."""
        limit = CHUNK * torch.get_num_threads()
        key = (position, limit, device.type)
        if key not in self._chunk_lists:
            before, size, after = self.views[position].shape3
            whole = [(slice(None), slice(None))]
            if device.type != "cpu" or before * size * after <= limit:
                pieces = whole
            elif before == 1:
                rows = limit // after
                pieces = [(slice(None), slice(a, min(size, a + rows))) for a in range(0, size, rows)] if rows else whole
            else:
                rows = limit // (size * after)
                pieces = [(slice(b, min(before, b + rows)), slice(None)) for b in range(0, before, rows)] if rows else whole
            self._chunk_lists[key] = pieces
        return self._chunk_lists[key]

    def _product(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x*y into a scratch buffer of chunk size on CPU (no allocation, no page faults every step)."""
        limit = CHUNK * torch.get_num_threads()
        if x.device.type != "cpu" or x.numel() > limit:
            return x * y
        scratch = self._scratch.get(x.dtype)
        if scratch is None or scratch.numel() < limit:
            scratch = self._scratch[x.dtype] = torch.empty(limit, dtype=x.dtype)
        return torch.mul(x, y, out=scratch[:x.numel()].view(x.shape))

    # ------------------------------------------------------------------ reductions
    def sum_products(self, pairs: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]) -> torch.Tensor:
        """Row k, column g: sum over group g's elements of a*b for the k-th (a, b) pair (float64). A pair
        whose two sides are the same tensor is a sum of squares. All pairs are summed chunk by chunk in
        one sweep, so each tensor is read from memory once however many pairs name it."""
        columns: list[list[torch.Tensor]] = [[] for _ in pairs]
        for position, view in enumerate(self.views):
            operands = [(a[view.tensor].reshape(view.shape3), b[view.tensor].reshape(view.shape3)) for a, b in pairs]
            for k, sums in enumerate(self._view_sums(position, operands)):
                columns[k].append(sums)
        if not self.views:
            return torch.zeros((len(pairs), self.n_groups), dtype=torch.float64, device=self.device)
        return self.to_groups(torch.stack([torch.cat(c) for c in columns], dim=1)).T

    def _view_sums(self, position: int, operands: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Per pair, the per-index sums of x*y over one view (float64)."""
        x0 = operands[0][0]
        accumulate = torch.float64 if x0.dtype == torch.float64 else torch.float32
        size = x0.shape[1]
        squares = [x.data_ptr() == y.data_ptr() and x.stride() == y.stride() and x.dtype == y.dtype for x, y in operands]
        sums = [torch.zeros(size, dtype=accumulate, device=x0.device) for _ in operands]
        for chunk in self._chunks(position, x0.device):
            whole_rows = chunk[0] == slice(None)  # the chunk holds every element of its indices: write, not add
            for k, (x, y) in enumerate(operands):
                if squares[k]:  # sum of squares as a norm: one read, nothing allocated (squared below)
                    if whole_rows:
                        torch.linalg.vector_norm(x[chunk], dim=(0, 2), dtype=accumulate, out=sums[k][chunk[1]])
                    else:
                        sums[k].add_(torch.linalg.vector_norm(x[chunk], dim=(0, 2), dtype=accumulate).square())
                elif whole_rows:
                    torch.sum(self._product(x[chunk], y[chunk]), dim=(0, 2), dtype=accumulate, out=sums[k][chunk[1]])
                else:
                    sums[k].add_(torch.sum(self._product(x[chunk], y[chunk]), dim=(0, 2), dtype=accumulate))
        chunked_squares = self._chunks(position, x0.device)[0][0] != slice(None)
        for k in range(len(operands)):
            if squares[k] and not chunked_squares:
                sums[k].square_()
        return [s.double() for s in sums]

    def nonzero(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per group: True where any of its elements is not exactly zero (exact: the largest magnitude of
        each index is compared with zero, so values whose squares underflow still count)."""
        parts = [torch.linalg.vector_norm(tensors[v.tensor].reshape(v.shape3), ord=math.inf, dim=(0, 2)).double()
                 for v in self.views]
        if not parts:
            return torch.zeros(self.n_groups, dtype=torch.bool, device=self.device)
        return self.to_groups(torch.cat(parts).unsqueeze(1))[:, 0] > 0

    def to_groups(self, per_index: torch.Tensor) -> torch.Tensor:
        """(indices, k) per-index sums -> (n_groups, k) per-group sums."""
        out = torch.zeros((self.n_groups, per_index.shape[1]), dtype=torch.float64, device=self.device)
        return out.index_add_(0, self._owner, per_index.index_select(0, self._owned))

    # ------------------------------------------------------------------ updates
    def multipliers(self, factor: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
        """Per view, factor[group of each index] (1 for indices of no group) shaped (1, axis, 1)."""
        extended = torch.cat([factor.to(dtype), torch.ones(1, dtype=dtype, device=factor.device)])
        spread = extended.index_select(0, self._index)
        return [part.view(1, -1, 1) for part in torch.split(spread, self._sizes)]

    def scale_(self, tensors: dict[str, torch.Tensor], factor: torch.Tensor) -> None:
        """Multiply every slice of group g by factor[g], in place (indices of no group keep their value)."""
        by_dtype = {}
        for position, view in enumerate(self.views):
            tensor = tensors[view.tensor]
            if tensor.dtype not in by_dtype:
                by_dtype[tensor.dtype] = self.multipliers(factor, tensor.dtype)
            tensor.view(view.shape3).mul_(by_dtype[tensor.dtype][position])

    def step_(self, params: dict[str, torch.Tensor], directions: dict[str, torch.Tensor], lr: float,
              before: torch.Tensor | None = None, after: torch.Tensor | None = None) -> None:
        """x ← (x·before[g] − lr·d)·after[g] for every parameter, in place (None: a factor of 1; tensors
        without groups take x − lr·d in one foreach call).

        Each tensor is updated chunk by chunk, both ops on a chunk before the next chunk, so the second
        op finds x in cache: the traffic of x − lr·d alone. With `after` alone the ops are x − lr·d, then
        ·after (the arithmetic of x.sub_ then x.mul_); with `before`, x·(before·after) and then
        x − lr·d·after as one addcmul. A tensor with two views (an erasable region's group over a tensor
        that carries channel groups too) takes the steps one by one over the whole tensor."""
        plain = [name for name in params if name not in self.views_of or (before is None and after is None)]
        if plain:
            torch._foreach_add_([params[n] for n in plain], [directions[n] for n in plain], alpha=-lr)
        if before is None and after is None:
            return
        cache: dict[tuple[str, torch.dtype], list[torch.Tensor]] = {}

        def spread(which: str, dtype: torch.dtype) -> list[torch.Tensor]:
            if (which, dtype) not in cache:
                factor = {"before": before, "after": after}.get(which)
                cache[(which, dtype)] = self.multipliers(before * after if which == "both" else factor, dtype)
            return cache[(which, dtype)]

        position_of = {id(v): i for i, v in enumerate(self.views)}
        for name, views in self.views_of.items():
            x, d = params[name], directions[name]
            i = position_of[id(views[0])]
            if len(views) == 1:
                x3, d3 = x.view(views[0].shape3), d.reshape(views[0].shape3)
                for chunk in self._chunks(i, x.device):
                    xc, dc, rows = x3[chunk], d3[chunk], (slice(None), chunk[1])
                    if before is None:
                        xc.sub_(dc, alpha=lr).mul_(spread("after", x.dtype)[i][rows])
                    elif after is None:
                        xc.mul_(spread("before", x.dtype)[i][rows]).sub_(dc, alpha=lr)
                    else:
                        xc.mul_(spread("both", x.dtype)[i][rows])
                        xc.addcmul_(dc, spread("after", x.dtype)[i][rows], value=-lr)
                continue
            for v in views if before is not None else ():
                x.view(v.shape3).mul_(spread("before", x.dtype)[position_of[id(v)]])
            x.sub_(d, alpha=lr)
            for v in views if after is not None else ():
                x.view(v.shape3).mul_(spread("after", x.dtype)[position_of[id(v)]])
