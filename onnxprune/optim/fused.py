"""DHSPG's per-group work fused and compiled with torch.compile (opt-in: `Dhspg(compiled=True)`, `run
--compile`).

Eager, a DHSPG step in its penalty phase makes three passes over the parameters: the momentum update,
the per-group sums ‖x‖², ⟨x, d⟩, ‖d‖² (a product and a reduction per pair, compute-bound on one CPU
thread), and the update. Compiled, the first two become one loop that reads x, the gradient and the
momentum buffer once, writes the buffer and reduces all three sums in registers, and the update
another: close to the memory traffic of torch's SGD with momentum (benchmarks/optimizer_step.py
--compiled). The kernels are compiled for dynamic shapes, once per process for every (before, axis,
after) view (about 15 s on one CPU thread, more for the first shape), so they pay off on long runs
and large models, not on tests; eager (`segments.py`) stays the default.

Covered: SGD with momentum (no dampening, Nesterov or weight decay: their direction is a buffer of its
own); other base optimizers, and the first step (where torch copies the gradient into the buffer),
run eager. A tensor with two views (a Conv weight's output and input channels) forms its direction
in the first view's kernel and reads it in the second's. Learning rate and momentum enter as 0-d
tensors, so a schedule does not recompile. `build` compiles every kernel on small stand-ins before the
first fused step changes anything; where that fails (no C++ compiler for torch.compile on CPU, say)
DHSPG says so once and runs eager.
"""

from __future__ import annotations

import math

import torch

from .base import BaseSettings
from .segments import GroupSegments


def _direction_and_sums(x: torch.Tensor, g: torch.Tensor, buf: torch.Tensor, momentum: torch.Tensor):
    """buf ← g + momentum·buf (the direction d); per index of axis 1: Σx², Σx·d, Σd² over axes 0 and 2."""
    d = g + momentum * buf
    buf.copy_(d)
    return (x * x).sum((0, 2)), (x * d).sum((0, 2)), (d * d).sum((0, 2))


def _sums(x: torch.Tensor, d: torch.Tensor):
    """Per index of axis 1: Σx², Σx·d, Σd² over axes 0 and 2 (a tensor's second view: d already formed)."""
    return (x * x).sum((0, 2)), (x * d).sum((0, 2)), (d * d).sum((0, 2))


def _update(x: torch.Tensor, d: torch.Tensor, boths: list[torch.Tensor], afters: list[torch.Tensor],
            lr: torch.Tensor) -> None:
    """x ← x·Π boths − lr·d·Π afters, in place (one factor per view, shaped to broadcast over x)."""
    kept, step = x, lr * d
    for factor in boths:
        kept = kept * factor
    for factor in afters:
        step = step * factor
    x.copy_(kept - step)


def fusable(settings: BaseSettings) -> bool:
    """Whether the compiled kernels cover this base optimizer (see module docstring)."""
    return (settings.variant == "sgd" and settings.momentum > 0 and not settings.dampening
            and not settings.nesterov and not settings.weight_decay)


class FusedSteps:
    """The two compiled passes of a DHSPG penalty step over `segments`' views (see module docstring)."""

    def __init__(self, segments: GroupSegments, shapes: dict[str, tuple[int, ...]], momentum: float) -> None:
        self.segments = segments
        self.built = False  # `build` compiled every kernel: a later failure is a bug, not a missing compiler
        self.momentum = torch.tensor(momentum, dtype=torch.float64, device=segments.device)
        self._direction = torch.compile(_direction_and_sums, dynamic=True)
        self._sums = torch.compile(_sums, dynamic=True)
        self._update = torch.compile(_update, dynamic=True)
        # per view: the shape its per-index factor takes to broadcast over the whole tensor
        self._broadcast = [_broadcast_shape(tuple(shapes[v.tensor]), v.shape3) for v in segments.views]
        # per tensor that carries groups: the positions of its views
        self._positions = {name: [i for i, v in enumerate(segments.views) if v.tensor == name]
                           for name in segments.views_of}

    def build(self, params: dict[str, torch.Tensor]) -> None:
        """Compile every kernel the step will call, on small stand-ins of each view and tensor (the
        same dtype, device and rank, and 1 wherever the real size is 1: torch.compile specialises on
        those), so that a build that fails does so before a step has changed anything."""
        def stand_in(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
            return torch.zeros(tuple(1 if n == 1 else 2 for n in shape), dtype=dtype, device=self.segments.device)

        segments = self.segments
        rate = torch.tensor(0.0, dtype=torch.float64, device=segments.device)
        for name, positions in self._positions.items():
            dtype, shape = params[name].dtype, tuple(params[name].shape)
            for index, position in enumerate(positions):
                x = stand_in(segments.views[position].shape3, dtype)
                if index == 0:
                    self._direction(x, x.clone(), x.clone(), self.momentum.to(dtype))
                else:
                    self._sums(x, x.clone())
            factors = [stand_in(self._broadcast[i], dtype) for i in positions]
            self._update(stand_in(shape, dtype), stand_in(shape, dtype), factors, [f.clone() for f in factors],
                         rate.to(dtype))
        self.built = True

    def direction_and_sums(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
                           buffers: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update every momentum buffer to this step's direction; return ‖x_g‖², ⟨x_g, d_g⟩, ‖d_g‖² per
        group (float64)."""
        segments = self.segments
        formed: set[str] = set()
        columns = []
        for view in segments.views:
            shape, name = view.shape3, view.tensor
            if name in formed:  # a second view of a tensor (a Conv weight's input and output channels)
                found = self._sums(params[name].view(shape), buffers[name].view(shape))
            else:
                found = self._direction(params[name].view(shape), grads[name].reshape(shape),
                                        buffers[name].view(shape), self.momentum.to(params[name].dtype))
                formed.add(name)
            columns.append(torch.stack([s.double() for s in found], dim=1))
        for name in params:
            if name not in segments.views_of:
                torch.add(grads[name], buffers[name], alpha=float(self.momentum), out=buffers[name])
        if not columns:
            zeros = torch.zeros(segments.n_groups, dtype=torch.float64, device=segments.device)
            return zeros, zeros.clone(), zeros.clone()
        xx, xd, dd = segments.to_groups(torch.cat(columns)).T
        return xx, xd, dd

    def step_(self, params: dict[str, torch.Tensor], directions: dict[str, torch.Tensor], lr: float,
              before: torch.Tensor, after: torch.Tensor) -> None:
        """x ← (x·Π before − lr·d)·Π after over the groups of x's views, for every parameter (tensors
        without groups: x − lr·d)."""
        segments = self.segments
        plain = [name for name in params if name not in segments.views_of]
        if plain:
            torch._foreach_add_([params[n] for n in plain], [directions[n] for n in plain], alpha=-lr)
        rate = torch.tensor(lr, dtype=torch.float64, device=segments.device)
        factors: dict[torch.dtype, tuple[list, list]] = {}
        for name, positions in self._positions.items():
            x = params[name]
            if x.dtype not in factors:
                factors[x.dtype] = (segments.multipliers(before * after, x.dtype),
                                    segments.multipliers(after, x.dtype))
            both, keep = factors[x.dtype]
            self._update(x, directions[name], [both[i].reshape(self._broadcast[i]) for i in positions],
                         [keep[i].reshape(self._broadcast[i]) for i in positions], rate.to(x.dtype))


def _broadcast_shape(shape: tuple[int, ...], shape3: tuple[int, int, int]) -> tuple[int, ...]:
    """The shape of a per-index factor of the view `shape3` = (before, size, after) of a tensor of
    `shape`: `size` on the axis the view is over, 1 elsewhere (all ones for a view of the whole tensor)."""
    before, size, _ = shape3
    for axis in range(len(shape)):
        if shape[axis] == size and math.prod(shape[:axis]) == before:
            return tuple(size if a == axis else 1 for a in range(len(shape)))
    return (1,) * len(shape)
