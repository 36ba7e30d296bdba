"""A latency estimate for any selection: HALP's latency lookup, built on the measured width table.

`widths` times each of a model's heavy ops (Conv, Gemm, MatMul with constant weights) at candidate
widths; here each op's time is fit as a function of the kept share of the families that shrink it,
from two measured points (full width, and the widths at the operating point), so that `select --by
latency` can estimate what any selection leaves without timing every width combination, and rank
groups by importance per millisecond saved (`LatencyModel.per_group`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ir import Graph
from .space import ACTIVATION
from .widths import Probe, WidthTable, _elements, heavy_ops, in_model_costs


@dataclass(frozen=True)
class OpLatency:
    """One heavy op's time as a function of the families that shrink it (HALP's latency lookup, fit to
    two measured points): `full_ms` at full width, of which `fixed` (a share) does not shrink with its
    multiply-adds (dispatch, memory traffic, the kernel path at these widths); the rest scales with
    the kept share of each of `families` (the input and output channel families; one for depthwise
    and grouped convolutions, whose multiply-adds follow one width)."""

    full_ms: float
    fixed: float
    families: tuple[int, ...]
    elementwise: bool = False  # the traffic of a family's activations, not a heavy op

    def ms(self, kept: dict[int, float]) -> float:
        """The op's time when family f keeps the share kept[f] of its groups (absent: all)."""
        share = float(np.prod([kept.get(f, 1.0) for f in self.families]))
        return self.full_ms * (self.fixed + (1.0 - self.fixed) * share)


class LatencyModel:
    """The time of a model's heavy ops (Conv, Gemm, MatMul with constant weights) and of the traffic of
    its prunable activations for any selection, from the measured width table: `estimate(selection)`
    in ms at batch 1, `total_ms` at full width, and `per_group(f)`, what removing one more group of
    family f saves near the operating point `keep` (HALP's latency cost of a group). Ops the table
    could not time are left out."""

    def __init__(self, ops: list[OpLatency], sizes: dict[int, int], keep: float) -> None:
        self.ops, self.sizes, self.keep = ops, sizes, keep
        self.total_ms = float(sum(op.full_ms for op in ops))

    def estimate(self, selection) -> float:
        """Estimated time (ms, batch 1) of the heavy ops once `selection`'s groups are removed."""
        kept = {f: 1.0 - len(groups) / self.sizes[f] for f, groups in selection.pruned.items() if f in self.sizes}
        return float(sum(op.ms(kept) for op in self.ops))

    def per_group(self, family_id: int) -> float:
        """Milliseconds one group of the family saves at the operating point (every other prunable
        family keeping `keep`)."""
        size = self.sizes.get(family_id)
        if not size:
            return 0.0
        saved = 0.0
        for op in self.ops:
            if family_id in op.families:
                others = float(np.prod([self.keep for f in op.families if f != family_id]))
                saved += op.full_ms * (1.0 - op.fixed) * others / size
        return saved


def latency_model(graph: Graph, shapes: dict, space, keep: float, multiple: int, table: WidthTable) -> LatencyModel:
    """Fit each heavy op's `OpLatency` from the table: its time at full width and at the widths that
    keeping `keep` of every prunable family, rounded to `multiple`, gives it (both measured where the
    table lacks them)."""
    family_of = {(m.value, m.axis): f.id for f in space.prunable if f.size > 1 for m in f.members}
    sizes = {f.id: f.size for f in space.prunable if f.size > 1}
    ops = heavy_ops(graph, shapes, set(family_of))
    full = [op.probe(1.0, 1) for op in ops]
    # narrow families at a finer step (as prune's fallback rounds them), so that what a 16-wide family
    # saves at 8 is measured, not assumed: the op at 16 would show no change at all
    at = [op.probe(keep, multiple, round_small=True) for op in ops]
    times = table.times(full + at + [ELEMENTWISE])
    cost = in_model_costs(full + at, times)  # a Conv that leaves the blocked layout pays the conversions
    fitted = []
    for op, whole, part in zip(ops, full, at):
        weight = op.weight
        t_full, t_part = cost[whole.key], cost[part.key]
        if math.isnan(t_full) or math.isnan(t_part) or t_full <= 0:
            continue
        # a weight's two axes are its input and output channels; a depthwise or grouped convolution's
        # multiply-adds follow its output channels alone (its input width per group stays)
        axes = (0,) if op.kind in ("depthwise", "grouped") else (0, 1)
        families = tuple(family_of[(weight, a)] for a in axes if (weight, a) in family_of)
        share = _macs(part) / _macs(whole)
        # t_part = t_full * (fixed + (1 - fixed) * share): the share of the time that did not shrink
        fixed = 0.0 if share >= 1.0 else min(max((t_part / t_full - share) / (1.0 - share), 0.0), 1.0)
        fitted.append(OpLatency(t_full, fixed, tuple(dict.fromkeys(families))))
    # the ops between the heavy ones (activations, squeeze-excitation scales, residual adds, pooling)
    # read and write each prunable activation: their time follows the family's elements
    per_element = times[ELEMENTWISE.key].ms / float(np.prod(ELEMENTWISE.x))
    if math.isfinite(per_element) and per_element > 0:
        for f in space.prunable:
            if f.id in sizes:
                elements = activation_elements(f, shapes)
                if elements:
                    fitted.append(OpLatency(per_element * elements, 0.0, (f.id,), elementwise=True))
    return LatencyModel(fitted, sizes, keep)


#: The elementwise op whose time per element stands for the ops between the heavy ones: a per-channel
#: scale of a 64-channel activation (timed like the heavy ops, in a model, cached in the same table).
ELEMENTWISE = Probe("Mul", (1, 64, 32, 32), (64, 1, 1))


def activation_elements(family, shapes: dict) -> float:
    """Elements (per sample) of the activations `family` runs through, at full width: each activation
    member's tensor once (symbolic dimensions, such as the batch, count 1)."""
    total = 0.0
    for member in family.members:
        if member.role != ACTIVATION:
            continue
        found = shapes.get(member.value)
        if found is None or found.shape is None:
            continue
        total += float(np.prod([d if isinstance(d, int) and d > 0 else 1 for d in found.shape]))
    return total


def _macs(probe: Probe) -> float:
    """Multiply-adds of a probe (a Conv's per output position times its output positions, about)."""
    if probe.op_type == "Conv":
        return float(np.prod(probe.w)) * _elements(probe, False) / max(probe.w[0], 1)
    return float(np.prod(probe.x[:-1])) * float(np.prod(probe.w))
