"""Coupling rules of normalisations, pooling, reductions and Softmax.

See `coupling.py` for the vocabulary. A normalisation or Softmax over a family's axis is not
zero-invariant: that axis freezes.
"""

from __future__ import annotations

import numpy as np

from ..space import CONSUMER, PRODUCER
from .coupling import (
    ABSENT,
    IN,
    OUT,
    Coupling,
    ax_in,
    ax_out,
    flag,
    identity_coupling,
    normalize_axis,
    param_roles,
    rank,
    zero_first,
    zero_never,
)
from .rule import OpView


# ---------------------------------------------------------------------- normalisation
def couple_batchnorm(view: OpView) -> Coupling | None:
    """BatchNormalization (inference form): channel axis 1 carries scale, bias, mean and var; a channel
    whose scale and bias are zero is zero whatever its input."""
    coupling = identity_coupling(view)
    if coupling is None:
        return None
    for slot in (1, 2, 3, 4):
        coupling.same.append((ax_in(slot, 0), ax_out(0, 1)))
        coupling.roles[ax_in(slot, 0)] = PRODUCER
    for out in range(1, len(view.outputs)):
        if view.outputs[out] is not None:
            coupling.frozen.append((ax_out(out, 0), "training-mode BatchNormalization statistics output"))
            coupling.frozen.append((ax_out(0, 1), "training-mode BatchNormalization"))
    coupling.zero = lambda flags, out_slot=0: flags[1] is True and flags[2] is True
    return coupling


def couple_instancenorm(view: OpView) -> Coupling | None:
    """InstanceNormalization normalises each channel over space (the spatial axes cannot shrink);
    scale and bias are per channel."""
    coupling = identity_coupling(view)
    if coupling is None:
        return None
    for axis in range(2, rank(view, IN, 0)):
        coupling.frozen.append((ax_in(0, axis), "InstanceNormalization normalises over this axis"))
    for slot in (1, 2):
        coupling.same.append((ax_in(slot, 0), ax_out(0, 1)))
        coupling.roles[ax_in(slot, 0)] = PRODUCER
    coupling.zero = lambda flags, out_slot=0: flags[1] is True and flags[2] is True
    return coupling


def couple_layernorm(view: OpView) -> Coupling | None:
    """LayerNormalization: the normalised axes (>= axis) cannot shrink (their statistics would change);
    leading axes pass through, zero only without a bias."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    first = normalize_axis(view.op.attr("axis", -1), r)
    coupling = Coupling()
    for axis in range(r):
        coupling.same.append((ax_in(0, axis), ax_out(0, axis)))
        if axis >= first:
            coupling.frozen.append((ax_in(0, axis), "LayerNormalization normalises over this axis"))
    for slot in (1, 2):
        if view.has_input(slot):
            param_roles(view, coupling, [slot], CONSUMER)
            for axis in range(rank(view, IN, slot) or 0):
                coupling.frozen.append((ax_in(slot, axis), "LayerNormalization scale/bias"))
    for out in range(1, len(view.outputs)):
        if view.outputs[out] is not None:
            for axis in range(min(first, rank(view, OUT, out) or 0)):
                coupling.same.append((ax_in(0, axis), ax_out(out, axis)))
    def zero(flags, out_slot=0):
        if out_slot == 0:  # (x - mean) * invstd * scale + bias: zero only without a bias
            return flags[0] is True and flag(flags, 2) is ABSENT
        return out_slot == 1 and flags[0] is True  # the mean is zero; InvStdDev is 1/sqrt(eps)
    coupling.zero = zero
    return coupling


def couple_groupnorm(view: OpView) -> Coupling | None:
    """GroupNormalization mixes the channels of a group: the channel axis is frozen."""
    coupling = identity_coupling(view)
    if coupling is None:
        return None
    for axis in range(1, rank(view, IN, 0)):
        coupling.frozen.append((ax_in(0, axis), "GroupNormalization normalises over this axis"))
    coupling.zero = zero_never
    return coupling


# ---------------------------------------------------------------------- pooling and reductions
def couple_pool(view: OpView) -> Coupling | None:
    """Pooling over space: batch and channel axes pass through; zeros pool to zero."""
    r = rank(view, IN, 0)
    if r is None or r < 2 or rank(view, OUT, 0) != r:
        return None
    coupling = Coupling(same=[(ax_in(0, 0), ax_out(0, 0)), (ax_in(0, 1), ax_out(0, 1))], zero=zero_first)
    if len(view.outputs) > 1 and view.outputs[1] is not None:  # MaxPool indices count across channels
        coupling.frozen.append((ax_in(0, 1), "MaxPool indices output depends on the channel count"))
    return coupling


_REDUCE_EXACT_WHEN_ZERO = {"ReduceSum", "ReduceL1", "ReduceL2", "ReduceSumSquare"}
_REDUCE_KEEPS_ZERO = {"ReduceSum", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceMean", "ReduceMax",
                      "ReduceMin", "ReduceProd"}


def couple_reduce(view: OpView) -> Coupling | None:
    """Reduce*: kept axes pass through; a reduced axis is a sink for sums (exact when the slice is
    zero) and frozen for means, maxima and the like (shrinking it changes the result)."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    op = view.op
    axes = op.attr("axes")
    if axes is None and view.has_input(1):
        found = view.constant(1)
        if found is None:
            return None
        axes = [int(a) for a in np.asarray(found).reshape(-1)]
    if not axes:
        if op.attr("noop_with_empty_axes", 0):
            return identity_coupling(view)
        axes = list(range(r))
    reduced = {normalize_axis(a, r) for a in axes}
    keepdims = op.attr("keepdims", 1)
    coupling = Coupling(zero=zero_first if op.op_type in _REDUCE_KEEPS_ZERO else zero_never)
    out = 0
    for axis in range(r):
        if axis in reduced:
            if op.op_type in _REDUCE_EXACT_WHEN_ZERO:
                coupling.sinks.append([ax_in(0, axis)])
            else:
                coupling.frozen.append((ax_in(0, axis), f"{op.op_type} over this axis changes when it shrinks"))
            if keepdims:
                out += 1
            continue
        coupling.same.append((ax_in(0, axis), ax_out(0, out)))
        out += 1
    return coupling


def couple_softmax(view: OpView) -> Coupling | None:
    """Softmax/LogSoftmax/Hardmax: the normalised axes cannot shrink; others pass through."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    coupling = identity_coupling(view)
    if coupling is None:
        return None
    default = -1 if view.graph is None or view.graph.opset >= 13 else 1
    axis = normalize_axis(view.op.attr("axis", default), r)
    normalised = [axis] if view.graph is None or view.graph.opset >= 13 else list(range(axis, r))
    for a in normalised:
        coupling.frozen.append((ax_in(0, a), f"{view.op.op_type} normalises over this axis"))
    coupling.zero = zero_never
    return coupling
