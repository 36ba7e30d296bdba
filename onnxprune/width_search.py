"""Per-family widths chosen for speed: which kept widths make the model fastest for a given cut?

The width table (`widths.WidthTable`), summed over a compact model's own Conv/Gemm/MatMul ops at
their exact widths, predicts that model's measured latency closely: over 24 selections of the zoo's
resnet at a 50 % FLOPs cut, its estimate of the latency cut and the measured one differ by at most
0.04 (correlation 0.98); over 24 random width vectors of its densenet, correlation 0.98 too. A
per-family linear fit (`latency_model`) cannot: onnxruntime's blocked layout pads channels to its
block, so a width's time is a step function, and one family's saving depends on the widths beside it. So the search here estimates whole width vectors:

- `WidthEstimate.ms(kept)`: the heavy ops' time (ms, batch 1) when family f keeps kept[f] groups, each
  op timed at its exact widths (the table measures a shape once and caches it).
- `search_widths`: width vectors along sampled directions (every family the same share first, then
  random per-family weights), each scaled by bisection until the exact cut (`removed`: FLOPs, say)
  reaches the target, kept counts rounded to each family's step; the fastest estimate of those
  within the tolerance, then improved a step at a time. Which groups of a family go is the
  caller's (its least important).

`prune` uses it where the faster ranking misses the latency bar (`app/widths_choice.select_measured`),
and measures its result against theirs: the estimate proposes, the measurement decides.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from .choose import nearest_removal
from .errors import UserError
from .ir import Graph
from .widths import HeavyOp, WidthTable, heavy_ops, in_model_costs, prunable_axes


class WidthEstimate:
    """The width table's time of a model's heavy ops at any per-family kept counts (see module
    docstring). Ops whose shapes the table could not time are left out of every estimate alike.

    An op's channel axis may hold the indices of several families (a Conv reading a Concat: DenseNet,
    Inception) and a family may hold several indices of it per group (the chunks of a fused
    projection): each family's share of the axis is counted from its member tables, and the axis keeps
    its full width less what the removed groups hold there."""

    def __init__(self, graph: Graph, shapes: dict, space, table: WidthTable) -> None:
        prunable = [f for f in space.prunable if f.size > 1]
        # (weight, axis) -> [(family, indices per group there)]
        holders: dict[tuple[str, int], list[tuple[int, float]]] = {}
        for f in prunable:
            for m in f.members:
                per_group = float((m.table >= 0).sum()) / f.size
                holders.setdefault((m.value, m.axis), []).append((f.id, per_group))
        self.sizes = {f.id: f.size for f in prunable}
        self.table = table
        self.ops: list[tuple[HeavyOp, tuple[int, list], tuple[int, list]]] = []
        for op in heavy_ops(graph, shapes, prunable_axes(space)):
            in_axis, out_axis = op.weight_axes
            c_in, c_out = op.channels
            self.ops.append((op, (c_in, holders.get((op.weight, in_axis), [])),
                             (c_out, holders.get((op.weight, out_axis), []))))

    def probes(self, kept: dict[int, int]) -> list:
        """Each heavy op at the widths that family f keeping kept[f] groups (absent: all) leaves it."""
        def width(side: tuple[int, list]) -> int | None:
            full, families = side
            removed = sum((self.sizes[f] - kept[f]) * per_group for f, per_group in families if f in kept)
            return max(1, int(round(full - removed))) if removed else None

        return [op.at(width(inputs), width(outputs)) for op, inputs, outputs in self.ops]

    def ms(self, kept: dict[int, int]) -> float:
        """Estimated time (ms, batch 1) of the heavy ops when family f keeps kept[f] groups (absent:
        all of them)."""
        probes = self.probes(kept)
        times = self.table.times(probes)
        cost = in_model_costs(probes, times)
        return float(sum(cost[p.key] for p in probes if math.isfinite(cost[p.key])))


class NoWidths(UserError):
    """`select rank=widths` found no width vector within a point of its target at this multiple (prune
    tries the next; alone, it is the user's one line)."""


def search_widths(sizes: dict[int, int], steps: dict[int, int], caps: dict[int, int],
                  removed: Callable[[dict[int, int]], float], estimate: Callable[[dict[int, int]], float],
                  target: float, tolerance: float, samples: int = 64, seed: int = 0,
                  seconds: float = 30.0) -> dict[int, int] | None:
    """Kept counts per family (keys of `sizes`) whose cut `removed(kept)` is within `tolerance` of
    `target` and whose `estimate(kept)` (ms) is the smallest found; None where none was found. Kept
    counts are multiples of `steps[f]` (at least one step; a family no wider than its step stays
    whole) and remove at most `caps[f]` groups.

    Candidates: along `samples` directions (every family the same share first, then log-uniform
    random weights per family, seeded), the width vector whose scale, found by bisection, lands
    closest to the target; the fastest of those within the tolerance is then improved step by step
    (`improve`). Sampling stops once `seconds` have gone (the estimates time the shapes the width
    table lacks); the first direction is always tried."""
    families = sorted(sizes)
    if not families:
        return None
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    cuts: dict[tuple[int, ...], float] = {}
    found: dict[tuple[int, ...], float] = {}  # width vectors within the tolerance -> their estimate

    def cut(kept: tuple[int, ...]) -> float:
        if kept not in cuts:
            cuts[kept] = removed(dict(zip(families, kept)))
        return cuts[kept]

    def kept_at(weights: np.ndarray, scale: float) -> tuple[int, ...]:
        return tuple(sizes[f] - nearest_removal(sizes[f], min(caps[f], int(min(1.0, scale * w) * sizes[f])),
                                                steps[f], caps[f]) for f, w in zip(families, weights))

    for sample in range(samples):
        if sample and time.perf_counter() - start > seconds:
            break
        weights = np.ones(len(families)) if sample == 0 else np.exp(rng.uniform(-2.0, 2.0, len(families)))
        low, high, best = 0.0, 1.0 / float(weights.min()), None
        for _ in range(16):
            middle = (low + high) / 2
            kept = kept_at(weights, middle)
            if best is None or abs(cut(kept) - target) < abs(cut(best) - target):
                best = kept
            low, high = (low, middle) if cut(kept) >= target else (middle, high)
        if best not in found and abs(cut(best) - target) <= tolerance:
            found[best] = estimate(dict(zip(families, best)))
    if not found:
        return None
    fastest = min(found, key=lambda k: (found[k], k))
    return improve(dict(zip(families, fastest)), found[fastest], sizes, steps, caps, removed, estimate, target,
                   tolerance, start + seconds)


def improve(kept: dict[int, int], ms: float, sizes: dict[int, int], steps: dict[int, int], caps: dict[int, int],
            removed: Callable[[dict[int, int]], float], estimate: Callable[[dict[int, int]], float],
            target: float, tolerance: float, deadline: float) -> dict[int, int]:
    """Hill-climb from `kept` (within the tolerance, estimated at `ms`): one family a step narrower, or
    wider, or one narrower and another wider, whichever first lowers the estimate while the cut stays
    within `tolerance` of `target`; until no such change is left or the clock passes `deadline`. The
    sampled directions land on a coarse grid, and a step here or there is often faster."""
    def moved(base: dict[int, int], f: int, sign: int) -> dict[int, int] | None:
        width = base[f] + sign * steps[f]
        if sizes[f] <= steps[f] or width < steps[f] or width > sizes[f] or sizes[f] - width > caps[f]:
            return None
        return {**base, f: width}

    families = sorted(kept)
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        changes = [moved(kept, f, sign) for f in families for sign in (-1, 1)]
        changes += [moved(narrower, g, 1) for f in families if (narrower := moved(kept, f, -1)) is not None
                    for g in families if g != f]
        for trial in (c for c in changes if c is not None):
            if abs(removed(trial) - target) > tolerance:
                continue
            found = estimate(trial)
            if found < ms * (1 - 1e-6):
                kept, ms, improved = trial, found, True
                break
    return kept
