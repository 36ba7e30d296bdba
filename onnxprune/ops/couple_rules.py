"""Coupling rules, one per op family (see `coupling.py` for the vocabulary).

Each `couple_*` function reads one op through its OpView and returns a Coupling, or None when this
instance is outside what the rule understands (the analysis then freezes every axis the op touches).
`rewrite_*` functions fix the op's attributes and size constants after axes shrank.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..space import CONSUMER, PRODUCER
from .coupling import (
    ABSENT,
    IN,
    OUT,
    Axis,
    Coupling,
    ax_in,
    ax_out,
    broadcast_coupling,
    dim,
    flag,
    identity_coupling,
    normalize_axis,
    rank,
    zero_all_carrying,
    zero_all_inputs,
    zero_any,
    zero_first,
    zero_never,
)
from .rule import STAND_INS, OpView, constant_value
from .shape_consts import (
    fixed_value,
    flat_pieces,
    read_only_into_shapes,
    replace_input_constant,
    rewrite_scaled_element,
    rewrite_shape_elements,
    shape_elements,
    strip_stand_ins,
    trace_elements,
)
from .shape_refine import analysis_types


def _param_roles(view: OpView, coupling: Coupling, slots: list[int], role: str) -> None:
    """Give every coupled axis of the parameter inputs `slots` the role `role`."""
    for slot in slots:
        r = rank(view, IN, slot)
        for axis in range(r or 0):
            coupling.roles.setdefault(ax_in(slot, axis), role)


def _sees_analysis_types(rewrite):
    """Make a rewrite take the analysis types (`analysis_types`) before it changes anything: compact runs
    rewrites one after another, and Reshape/Expand rewrites later on must decide from the graph as the
    analysis saw it, not from one whose Split sizes or Slice bounds already shrank."""
    def run(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
        if view.types is not None:
            analysis_types(graph, view.types)
        rewrite(graph, op, view, kept)
    run.__name__, run.__doc__ = rewrite.__name__, rewrite.__doc__
    return run


# ---------------------------------------------------------------------- elementwise
def _unary(zero_rule, doc: str, nonfinite=None):
    def couple(view: OpView) -> Coupling | None:
        coupling = identity_coupling(view)
        if coupling is not None:
            coupling.zero = zero_rule
            if nonfinite is not None:
                coupling.nonfinite = nonfinite
        return coupling
    couple.__doc__ = doc
    return couple


couple_unary_keeps_zero = _unary(zero_first, "f(0) = 0 elementwise (Relu, Gelu, Tanh, ...): axes pass, zeros stay zeros.")
couple_unary_nonzero = _unary(zero_never, "f(0) != 0 elementwise (Sigmoid, Exp, ...): axes pass, zeros do not stay.")
couple_unary_infinite = _unary(zero_never, "f(0) is infinite (Log, Reciprocal): a zero slice becomes inf.",
                               nonfinite=zero_first)


def couple_dropout(view: OpView) -> Coupling | None:
    """Dropout (inference: identity); its optional mask output has the same shape."""
    coupling = identity_coupling(view)
    if coupling is None:
        return None
    if len(view.outputs) > 1 and view.outputs[1] is not None:
        r = rank(view, IN, 0)
        coupling.same += [(ax_in(0, a), ax_out(1, a)) for a in range(r)]
    coupling.zero = lambda flags, out_slot=0: out_slot == 0 and flags[0] is True  # the mask is all ones
    return coupling


def couple_clip(view: OpView) -> Coupling | None:
    """Clip keeps zeros when 0 lies within its (constant) bounds."""
    coupling = identity_coupling(view)
    if coupling is None:
        return None
    if view.graph is not None and view.graph.opset < 11:
        low, high = view.op.attr("min", -np.inf), view.op.attr("max", np.inf)
    else:
        low_c, high_c = view.constant(1), view.constant(2)
        low = -np.inf if not view.has_input(1) else (None if low_c is None else float(low_c))
        high = np.inf if not view.has_input(2) else (None if high_c is None else float(high_c))
    keeps = low is not None and high is not None and low <= 0 <= high
    coupling.zero = zero_first if keeps else zero_never
    return coupling


def couple_prelu(view: OpView) -> Coupling | None:
    """PRelu: slope broadcasts along the input; prelu(0) = 0 whatever the slope (slope is only sliced)."""
    coupling = Coupling(zero=zero_first)
    if not broadcast_coupling(view, [0, 1], coupling):
        return None
    _param_roles(view, coupling, [1], CONSUMER)
    return coupling


def _binary(zero_rule, param_role: str = PRODUCER):
    def couple(view: OpView) -> Coupling | None:
        coupling = Coupling(zero=zero_rule)
        slots = [i for i, present in enumerate(view.present) if present]
        if not broadcast_coupling(view, slots, coupling):
            return None
        _param_roles(view, coupling, slots, param_role)
        return coupling
    couple.__doc__ = f"Broadcasting elementwise op; zero rule {zero_rule.__name__}; constant operands are {param_role}s."
    return couple


couple_add_like = _binary(zero_all_inputs)
couple_mul = _binary(zero_any)


def couple_div(view: OpView) -> Coupling | None:
    """a / b: zero when a is; a constant denominator is only sliced (zeroing it would divide by zero)."""
    def zero(flags, out_slot=0):
        return flags[0] is True and flags[1] is not True
    coupling = Coupling(zero=zero, nonfinite=lambda flags, out_slot=0: flags[1] is True)  # x / 0
    if not broadcast_coupling(view, [0, 1], coupling):
        return None
    _param_roles(view, coupling, [0], PRODUCER)
    _param_roles(view, coupling, [1], CONSUMER)
    return coupling


def couple_pow(view: OpView) -> Coupling | None:
    """x ** p keeps zeros for a constant positive exponent."""
    exponent = view.constant(1)
    positive = exponent is not None and np.all(np.asarray(exponent) > 0)

    def zero(flags, out_slot=0):  # x ** 0 = 1: an exponent zeroed with the group (a producer elsewhere) breaks it
        return positive and flags[0] is True and flags[1] is not True

    def nonfinite(flags, out_slot=0):  # 0 ** negative = inf
        return flags[0] is True and not (exponent is not None and np.all(np.asarray(exponent) >= 0))
    coupling = Coupling(zero=zero, nonfinite=nonfinite)
    if not broadcast_coupling(view, [0, 1], coupling):
        return None
    _param_roles(view, coupling, [1], CONSUMER)
    return coupling


def couple_where(view: OpView) -> Coupling | None:
    """Where(cond, a, b) is zero where both branches are."""
    def zero(flags, out_slot=0):
        return flag(flags, 1) is True and flag(flags, 2) is True
    coupling = Coupling(zero=zero)
    if not broadcast_coupling(view, [0, 1, 2], coupling):
        return None
    _param_roles(view, coupling, [1, 2], PRODUCER)
    return coupling


# ---------------------------------------------------------------------- convolution and linear algebra
def couple_conv(view: OpView) -> Coupling | None:
    """Conv: batch passes through; output channels are produced by weight rows (and bias); input
    channels are contracted with weight columns (group = 1), pass through (depthwise), or vanish with
    their whole group (a grouped convolution loses groups, never part of one)."""
    x_rank, w_rank = rank(view, IN, 0), rank(view, IN, 1)
    if x_rank is None or w_rank is None or rank(view, OUT, 0) != x_rank:
        return None
    group = view.op.attr("group", 1)
    c_in, c_out, per_group = dim(view, IN, 0, 1), dim(view, IN, 1, 0), dim(view, IN, 1, 1)
    if not isinstance(c_in, int) and isinstance(per_group, int):
        c_in = per_group * group  # the weight says it when inference could not
    if not isinstance(c_in, int) or not isinstance(c_out, int):
        return None
    coupling = Coupling(same=[(ax_in(0, 0), ax_out(0, 0)), (ax_in(1, 0), ax_out(0, 1))])
    coupling.roles[ax_in(1, 0)] = PRODUCER
    if view.has_input(2):
        coupling.same.append((ax_in(2, 0), ax_out(0, 1)))
        coupling.roles[ax_in(2, 0)] = PRODUCER
    if group == 1:
        coupling.same.append((ax_in(0, 1), ax_in(1, 1)))
        coupling.roles[ax_in(1, 1)] = CONSUMER
        coupling.sinks.append([ax_in(0, 1)])
    elif group == c_in and c_out % c_in == 0:  # depthwise, channel multiplier c_out / c_in
        multiplier = c_out // c_in
        if multiplier == 1:
            coupling.same.append((ax_in(0, 1), ax_out(0, 1)))
        else:
            src = np.repeat(np.arange(c_in), multiplier)
            coupling.links.append((ax_in(0, 1), src, ax_out(0, 1), np.arange(c_out)))
        coupling.frozen.append((ax_in(1, 1), "depthwise weight axis of size 1"))
    elif c_in % group == 0 and c_out % group == 0 and per_group == c_in // group:
        # a grouped convolution (RegNet, ResNeXt) loses whole groups: group k's input channels and its
        # output channels vanish together, so every group keeps its width and `group` its meaning;
        # each index is tied to the first channel of its group on the other axis, which unites them
        per_in, per_out = c_in // group, c_out // group
        coupling.links.append((ax_in(0, 1), np.arange(c_in), ax_out(0, 1), (np.arange(c_in) // per_in) * per_out))
        coupling.links.append((ax_out(0, 1), np.arange(c_out), ax_in(0, 1), (np.arange(c_out) // per_out) * per_in))
        coupling.frozen.append((ax_in(1, 1), f"grouped convolution (group={group}): the width of each group"))
    else:
        coupling.frozen += [(ax_in(0, 1), f"grouped convolution (group={group}): groups must stay equal"),
                            (ax_out(0, 1), f"grouped convolution (group={group}): groups must stay equal")]

    for axis in range(2, w_rank):
        coupling.frozen.append((ax_in(1, axis), "convolution kernel window"))

    def zero(flags, out_slot=0):
        bias_zero = flag(flags, 2) in (ABSENT, True)
        if group != 1 and flags[0] is True and bias_zero:
            return True
        return flags[1] is True and bias_zero
    coupling.zero = zero
    return coupling


@_sees_analysis_types
def rewrite_conv(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """A depthwise or grouped Conv's `group` follows its channel count (whole groups go: each keeps
    the weight's input width)."""
    group = op.attr("group", 1)
    if group != 1 and ax_in(0, 1) in kept:
        per_group = dim(view, IN, 1, 1)
        per_group = per_group if isinstance(per_group, int) and per_group > 0 else 1
        graph.set_attr(op, "group", int(len(kept[ax_in(0, 1)]) // per_group))


def couple_conv_transpose(view: OpView) -> Coupling | None:
    """ConvTranspose (group 1): weight is [C_in, C_out, k...]; input channels contract with weight rows."""
    if rank(view, IN, 0) is None or rank(view, IN, 1) is None or view.op.attr("group", 1) != 1:
        return None
    coupling = Coupling(same=[(ax_in(0, 0), ax_out(0, 0)), (ax_in(0, 1), ax_in(1, 0)), (ax_in(1, 1), ax_out(0, 1))],
                        sinks=[[ax_in(0, 1)]])
    coupling.roles[ax_in(1, 0)] = CONSUMER
    coupling.roles[ax_in(1, 1)] = PRODUCER
    if view.has_input(2):
        coupling.same.append((ax_in(2, 0), ax_out(0, 1)))
        coupling.roles[ax_in(2, 0)] = PRODUCER
    for axis in range(2, rank(view, IN, 1)):
        coupling.frozen.append((ax_in(1, axis), "convolution kernel window"))
    coupling.zero = lambda flags, out_slot=0: flags[1] is True and flag(flags, 2) in (ABSENT, True)
    return coupling


def couple_gemm(view: OpView) -> Coupling | None:
    """Gemm: Y[M,N] = A[M,K] B[K,N] + C; B's N axis (and C) produce output columns; K is contracted."""
    if rank(view, IN, 0) != 2 or rank(view, IN, 1) != 2:
        return None
    a_m, a_k = (1, 0) if view.op.attr("transA", 0) else (0, 1)
    b_k, b_n = (1, 0) if view.op.attr("transB", 0) else (0, 1)
    coupling = Coupling(same=[(ax_in(0, a_m), ax_out(0, 0)), (ax_in(1, b_n), ax_out(0, 1)),
                              (ax_in(0, a_k), ax_in(1, b_k))], sinks=[[ax_in(0, a_k), ax_in(1, b_k)]])
    coupling.roles[ax_in(1, b_n)] = PRODUCER
    coupling.roles[ax_in(1, b_k)] = CONSUMER
    coupling.roles[ax_in(0, a_m)] = PRODUCER
    coupling.roles[ax_in(0, a_k)] = CONSUMER
    if view.has_input(2):
        c_rank = rank(view, IN, 2)
        if c_rank is None:
            return None
        for axis in range(c_rank):
            o = axis + 2 - c_rank
            if dim(view, IN, 2, axis) != 1 or dim(view, OUT, 0, o) == 1:
                coupling.same.append((ax_in(2, axis), ax_out(0, o)))
                coupling.roles[ax_in(2, axis)] = PRODUCER

    def zero(flags, out_slot=0):
        return (flags[0] is True or flags[1] is True) and flag(flags, 2) in (ABSENT, True)
    coupling.zero = zero
    return coupling


def couple_matmul(view: OpView) -> Coupling | None:
    """MatMul (both operands rank >= 2): rows of A and columns of B pass to the output, K is
    contracted (exact when either operand's slice is zero), batch axes broadcast."""
    a_rank, b_rank, y_rank = rank(view, IN, 0), rank(view, IN, 1), rank(view, OUT, 0)
    if a_rank is None or b_rank is None or y_rank is None or a_rank < 2 or b_rank < 2:
        return None
    coupling = Coupling(same=[(ax_in(0, a_rank - 2), ax_out(0, y_rank - 2)), (ax_in(1, b_rank - 1), ax_out(0, y_rank - 1)),
                              (ax_in(0, a_rank - 1), ax_in(1, b_rank - 2))],
                        sinks=[[ax_in(0, a_rank - 1), ax_in(1, b_rank - 2)]], zero=zero_any)
    coupling.roles.update({ax_in(0, a_rank - 2): PRODUCER, ax_in(0, a_rank - 1): CONSUMER,
                           ax_in(1, b_rank - 1): PRODUCER, ax_in(1, b_rank - 2): CONSUMER})
    for slot, r in ((0, a_rank), (1, b_rank)):
        for axis in range(r - 2):
            o = axis + y_rank - r
            d_in, d_out = dim(view, IN, slot, axis), dim(view, OUT, 0, o)
            if d_in == 1 and d_out != 1:
                continue
            if d_in is None or d_out is None:
                coupling.frozen.append((ax_out(0, o), "unknown batch dimension of MatMul"))
                continue
            coupling.same.append((ax_in(slot, axis), ax_out(0, o)))
            coupling.roles[ax_in(slot, axis)] = PRODUCER
    return coupling


def _einsum_terms(equation: str, ranks: list[int | None]) -> tuple[list[str], str] | None:
    """Operand and output subscripts of an explicit einsum equation without ellipsis or repeated
    letters within one operand; None for anything else."""
    equation = equation.replace(" ", "")
    if "->" not in equation or "." in equation:
        return None
    inputs, output = equation.split("->")
    terms = inputs.split(",")
    if len(terms) != len(ranks) or any(r is None or len(t) != r for t, r in zip(terms, ranks)):
        return None
    if any(len(set(t)) != len(t) for t in (*terms, output)) or not set(output) <= set("".join(terms)):
        return None
    return terms, output


def couple_einsum(view: OpView) -> Coupling | None:
    """Einsum (explicit equations, no ellipsis): a letter kept in the output is one axis across every
    operand and the output; a summed letter is contracted (exact when any operand's slice is zero)."""
    parsed = _einsum_terms(view.op.attr("equation", ""), [rank(view, IN, i) for i in range(len(view.inputs))])
    if parsed is None:
        return None
    terms, output = parsed
    coupling = Coupling(zero=zero_any)
    for letter in sorted(set("".join(terms))):
        axes = [ax_in(i, t.index(letter)) for i, t in enumerate(terms) if letter in t]
        sizes = {dim(view, IN, a.slot, a.axis) for a in axes}
        if letter in output:
            axes.append(ax_out(0, output.index(letter)))
        if len(axes) > 1 and 1 in sizes and len(sizes) > 1:
            for a in axes:
                coupling.frozen.append((a, "Einsum broadcasts this letter"))
            continue
        for a in axes[1:]:
            coupling.same.append((axes[0], a))
        role = PRODUCER if letter in output else CONSUMER
        for a in axes:
            if a.side == IN:
                coupling.roles[a] = role
        if letter not in output:
            coupling.sinks.append([a for a in axes if a.side == IN])
    return coupling


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
            _param_roles(view, coupling, [slot], CONSUMER)
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


# ---------------------------------------------------------------------- moving data
def couple_transpose(view: OpView) -> Coupling | None:
    """Transpose: output axis i is input axis perm[i]."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    perm = view.op.attr("perm") or list(reversed(range(r)))
    return Coupling(same=[(ax_in(0, p), ax_out(0, i)) for i, p in enumerate(perm)], zero=zero_first)


def _block_link(coupling: Coupling, outer: Axis, outer_size: int, inner: Axis, block: int) -> None:
    """Index i of `outer` owns indices [i*block, (i+1)*block) of `inner`."""
    coupling.links.append((outer, np.repeat(np.arange(outer_size), block), inner, np.arange(outer_size * block)))


def couple_flatten(view: OpView) -> Coupling | None:
    """Flatten to 2-D: the outermost axis of each side keeps its identity as blocks; inner axes freeze."""
    r = rank(view, IN, 0)
    shape = view.inputs[0].shape if view.inputs[0] is not None else None
    if r is None or shape is None:
        return None
    split = normalize_axis(view.op.attr("axis", 1), r) if r else 0
    coupling = Coupling(zero=zero_first)
    for out_axis, axes in ((0, list(range(split))), (1, list(range(split, r)))):
        if not axes:
            continue
        inner = shape[axes[0] + 1:axes[-1] + 1]
        if len(axes) == 1:
            coupling.same.append((ax_in(0, axes[0]), ax_out(0, out_axis)))
            continue
        if not all(isinstance(d, int) for d in inner) or not isinstance(shape[axes[0]], int):
            for axis in axes:
                coupling.frozen.append((ax_in(0, axis), "Flatten over dimensions that are not static"))
            coupling.frozen.append((ax_out(0, out_axis), "Flatten over dimensions that are not static"))
            continue
        _block_link(coupling, ax_in(0, axes[0]), shape[axes[0]], ax_out(0, out_axis), int(np.prod(inner)))
        for axis in axes[1:]:
            coupling.frozen.append((ax_in(0, axis), "inner axis of a Flatten"))
    return coupling


def _reshape_groups(src: list, dst: list) -> list[tuple[list[int], list[int]]] | None:
    """Split two shapes into runs of axes with equal products (the way a row-major reshape regroups
    them). Symbolic dims must meet the same symbol. None if the shapes cannot be matched."""
    groups, i, j = [], 0, 0
    while i < len(src) or j < len(dst):
        if i < len(src) and j < len(dst) and (isinstance(src[i], str) or isinstance(dst[j], str)):
            if src[i] != dst[j]:
                return None
            groups.append(([i], [j]))
            i, j = i + 1, j + 1
            continue
        gi, gj = [i] if i < len(src) else [], [j] if j < len(dst) else []
        if not gi or not gj:
            rest_src, rest_dst = src[i:], dst[j:]
            if all(d == 1 for d in rest_src) and all(d == 1 for d in rest_dst):
                groups.append((list(range(i, len(src))), list(range(j, len(dst)))))
                break
            return None
        p, q = src[i], dst[j]
        i, j = i + 1, j + 1
        while p != q:
            if p < q:
                if i >= len(src) or not isinstance(src[i], int):
                    return None
                p *= src[i]
                gi.append(i)
                i += 1
            else:
                if j >= len(dst) or not isinstance(dst[j], int):
                    return None
                q *= dst[j]
                gj.append(j)
                j += 1
        groups.append((gi, gj))
    return groups


def _split_link(coupling: Coupling, parts: list[Axis], sizes: list[int], whole: Axis, kind: str) -> int:
    """The whole axis is the row-major product of `parts`. Link one part to it (index i owns the whole's
    indices whose coordinate on that part is i) and freeze the others: linking two would tie every
    index to every other. The innermost part (head_dim) never; among the rest the largest, ties to
    the outermost: attention heads in both [heads, head_dim] and fused [3, heads, head_dim] splits.
    Returns the linked part's position."""
    candidates = range(len(parts) - 1)
    linked = max(candidates, key=lambda p: (sizes[p], -p))
    inner = int(np.prod(sizes[linked + 1:]))
    total = int(np.prod(sizes))
    coupling.links.append((parts[linked], (np.arange(total) // inner) % sizes[linked], whole, np.arange(total)))
    for position, part in enumerate(parts):
        if position != linked:
            where = "inner" if position > linked else "outer"
            coupling.frozen.append((part, f"{where} axis of a Reshape {kind} (another axis owns the indices)"))
    return linked


_SYMBOL = "(one dynamic dimension)"


def _match_lone_symbols(src: list, dst: list) -> tuple[list, list]:
    """If each side has exactly one dynamic dim and the static dims multiply to the same number, the
    two dynamic dims are equal (as with a -1 in the target shape): give them one name."""
    dynamic_src = [i for i, d in enumerate(src) if not isinstance(d, int)]
    dynamic_dst = [i for i, d in enumerate(dst) if not isinstance(d, int)]
    if len(dynamic_src) == 1 and len(dynamic_dst) == 1 and \
            np.prod([d for d in src if isinstance(d, int)]) == np.prod([d for d in dst if isinstance(d, int)]):
        src, dst = list(src), list(dst)
        src[dynamic_src[0]] = dst[dynamic_dst[0]] = _SYMBOL
    return src, dst


def _couple_reshape_symbolic(view: OpView) -> Coupling | None:
    """Reshape with symbolic dims (no prime stand-ins bound): axes regroup by equal products. 1-to-1 axes
    pass through; when one axis splits into several (or several merge into one), the outermost one owns
    blocks of the big axis (attention heads), and the inner ones freeze. A size on a prunable axis must
    be rewritable: a constant, 0 (copy) or -1 (infer) in the shape input."""
    src = view.inputs[0].shape if view.inputs[0] is not None else None
    dst = view.outputs[0].shape if view.outputs[0] is not None else None
    if src is None or dst is None or any(d is None for d in (*src, *dst)):
        return None
    groups = _reshape_groups(*_match_lone_symbols(list(src), list(dst)))
    if groups is None:
        return None
    elements = shape_elements(view.graph, view.graph.inputs_of(view.op)[1], view.types) \
        if view.graph is not None else None
    coupling = Coupling(zero=zero_first)

    def rewritable(out_axis: int) -> bool:
        return elements is not None and len(elements) == len(dst) and elements[out_axis] is not None

    for gi, gj in groups:
        real_i = [a for a in gi if src[a] != 1]
        real_j = [a for a in gj if dst[a] != 1]
        if not real_i or not real_j:
            continue
        if len(real_i) == 1 and len(real_j) == 1:
            coupling.same.append((ax_in(0, real_i[0]), ax_out(0, real_j[0])))
            if not rewritable(real_j[0]):
                coupling.frozen.append((ax_out(0, real_j[0]), "Reshape target size is computed at run time"))
        elif len(real_i) == 1:  # split: one output axis owns its slices of the input axis
            linked = _split_link(coupling, [ax_out(0, a) for a in real_j], [dst[a] for a in real_j],
                                 ax_in(0, real_i[0]), "split")
            if not rewritable(real_j[linked]):
                coupling.frozen.append((ax_out(0, real_j[linked]), "Reshape target size is computed at run time"))
        elif len(real_j) == 1:  # merge: one input axis owns its slices of the output axis
            _split_link(coupling, [ax_in(0, a) for a in real_i], [src[a] for a in real_i], ax_out(0, real_j[0]),
                        "merge")
            if not rewritable(real_j[0]):
                coupling.frozen.append((ax_out(0, real_j[0]), "Reshape target size is computed at run time"))
        else:
            for axis in real_i:
                coupling.frozen.append((ax_in(0, axis), "Reshape regroups several axes at once"))
            for axis in real_j:
                coupling.frozen.append((ax_out(0, axis), "Reshape regroups several axes at once"))
    return coupling


def couple_reshape(view: OpView) -> Coupling | None:
    """Reshape: axes regroup by equal products into runs, and each run is read as mixed-radix digits
    (the common refinement of both sides' sizes: [L, N, 32] -> [L, N*4, 8] has digits N, 4, 8). One
    digit per run carries the family: the largest static digit that is not the innermost (head_dim),
    or the innermost when it is the only one; never a dynamic digit (batch, sequence) and never a digit
    whose axis is only unstacked by constant scalar Gathers or unit Splits (the 3 of a fused q/k/v
    projection). Axes holding that digit are linked (index i owns the indices whose digit is i's);
    the run's other axes freeze. A shrinking output axis needs a rewritable target element: a constant,
    0 or -1, a dimension read at run time by Shape that only feeds targets (tied to the axis it reads),
    or a dynamic product times a constant (batch x heads: the constant is rescaled)."""
    src = view.inputs[0].shape if view.inputs[0] is not None else None
    dst = view.outputs[0].shape if view.outputs[0] is not None else None
    if src is None or dst is None or any(d is None for d in (*src, *dst)):
        return None
    if not all(isinstance(d, int) and d > 0 for d in (*src, *dst)):
        return _couple_reshape_symbolic(view)
    groups = _reshape_groups(list(src), list(dst))
    if groups is None or view.graph is None:
        return None
    shape_value = view.graph.inputs_of(view.op)[1]
    elements = trace_elements(view.graph, shape_value, view.types)
    coupling = Coupling(zero=zero_first)
    for gi, gj in groups:
        real_i = [a for a in gi if src[a] != 1]
        real_j = [a for a in gj if dst[a] != 1]
        if real_i and real_j:
            _couple_run(view, coupling, src, dst, real_i, real_j, elements)
    return coupling


def _digits(src_sizes: list[int], dst_sizes: list[int]):
    """The mixed-radix digits (innermost first) that both sides' axes are made of, and for each axis of
    each side the range of digits it spans; None if the sides interleave (no common refinement)."""
    def boundaries(sizes):
        found, product = [1], 1
        for size in reversed(sizes):
            product *= size
            found.append(product)
        return found
    bounds = sorted(set(boundaries(src_sizes)) | set(boundaries(dst_sizes)))
    if any(high % low for low, high in itertools.pairwise(bounds)):
        return None
    digits = [high // low for low, high in itertools.pairwise(bounds)]

    def spans(sizes):
        found, inner = [], 1
        for size in reversed(sizes):
            found.append(range(bounds.index(inner), bounds.index(inner * size)))
            inner *= size
        return list(reversed(found))
    return digits, spans(src_sizes), spans(dst_sizes)


def _digit_of(size: int, span: range, digits: list[int], digit: int) -> np.ndarray:
    """For every index of an axis spanning `span`, the value of `digit` in it."""
    inner = int(np.prod(digits[span.start:digit]))
    return (np.arange(size) // inner) % digits[digit]


def _couple_run(view: OpView, coupling: Coupling, src, dst, real_i: list[int], real_j: list[int], elements) -> None:
    """Couple one run of axes of equal product (see couple_reshape)."""
    found = _digits([src[a] for a in real_i], [dst[a] for a in real_j])
    if found is None:
        for a in real_i:
            coupling.frozen.append((ax_in(0, a), "Reshape regroups several axes at once"))
        for a in real_j:
            coupling.frozen.append((ax_out(0, a), "Reshape regroups several axes at once"))
        return
    digits, src_spans, dst_spans = found
    if len(real_i) == 1 and len(real_j) == 1:
        coupling.same.append((ax_in(0, real_i[0]), ax_out(0, real_j[0])))
        _require_rewritable(view, coupling, real_j[0], elements)
        return
    output = view.graph.outputs_of(view.op)[0]
    stacked = {span.start for a, span in zip(real_j, dst_spans)
               if len(span) == 1 and _is_unstacked(view.graph, output, a, view.types)}
    candidates = [d for d in range(len(digits)) if digits[d] > 1 and d not in stacked
                  and strip_stand_ins(digits[d]) == digits[d]]
    outer = [d for d in candidates if d != 0]
    chosen = max(outer, key=lambda d: (digits[d], d)) if outer else (0 if 0 in candidates else None)
    kind = "split" if len(real_i) == 1 else "merge" if len(real_j) == 1 else "regrouping"
    holders = []
    for side, axes, spans, shape in ((ax_in, real_i, src_spans, src), (ax_out, real_j, dst_spans, dst)):
        for a, span in zip(axes, spans):
            if chosen is not None and chosen in span:
                holders.append((side(0, a), _digit_of(shape[a], span, digits, chosen)))
            elif chosen is None:
                coupling.frozen.append((side(0, a), f"axis of a Reshape {kind} with no static axis to own the indices"))
            else:
                where = "outer" if span.start > chosen else "inner"
                coupling.frozen.append((side(0, a), f"{where} axis of a Reshape {kind} (another axis owns the indices)"))
    if chosen is None:
        return
    (a_axis, a_digit), (b_axis, b_digit) = holders
    first_a = np.zeros(digits[chosen], dtype=np.int64)
    first_b = np.zeros(digits[chosen], dtype=np.int64)
    first_a[a_digit[::-1]] = np.arange(len(a_digit))[::-1]  # the first index holding each digit value
    first_b[b_digit[::-1]] = np.arange(len(b_digit))[::-1]
    coupling.links.append((a_axis, np.concatenate([np.arange(len(a_digit)), first_a[b_digit]]),
                           b_axis, np.concatenate([first_b[a_digit], np.arange(len(b_digit))])))
    _require_rewritable(view, coupling, b_axis.axis, elements)


def _require_rewritable(view: OpView, coupling: Coupling, out_axis: int, elements, position: int | None = None
                        ) -> None:
    """Freeze output axis `out_axis` unless compact can rewrite its element (at `position`, default the
    same) of the target shape in input 1 (see couple_reshape); tie it to the dimension it reads when it
    reads one."""
    position = out_axis if position is None else position
    size = dim(view, OUT, 0, out_axis)
    element = elements[position] if elements is not None and 0 <= position < len(elements) else None
    target = view.graph.inputs_of(view.op)[1]
    why = f"{view.op.op_type} target size is computed at run time"
    if element is None:
        coupling.frozen.append((ax_out(0, out_axis), why))
    elif element.read is not None and _pure_read(view.graph, view.types, element):
        replaceable = not element.dynamic and _static_piece(view.graph, target, position, view.types)
        coupling.ties.append((ax_out(0, out_axis), *element.read, replaceable, element.scaled))
    elif (element.dynamic or element.shaped) and (
            not isinstance(size, int) or element.coef >= min(STAND_INS) or strip_stand_ins(size) != element.coef or
            not _one_element_piece(view.graph, target, position, view.types)):
        # computed at run time from dimensions (dynamic, or bound by the user only for the analysis): compact
        # rescales it in place, which needs it as a piece of its own with the static factor it had here
        coupling.frozen.append((ax_out(0, out_axis), why))


def _pure_read(graph, types, element) -> bool:
    """True if every Shape op that reads the dimension behind `element` sends it only into Reshape
    targets as a whole element (the Shape rule then leaves that dimension free to shrink)."""
    name, axis = element.read
    found = types.get(name) if types is not None else None
    if found is None or found.rank is None:
        return False
    for op, _ in graph.uses(graph.value(name)):
        if op.op_type != "Shape" or op.domain not in ("", "ai.onnx"):
            continue
        start, end = _shape_range(op, found.rank)
        if start <= axis < end and not read_only_into_shapes(graph, graph.outputs_of(op)[0], axis - start,
                                                             end - start, (name, axis), types):
            return False
    return True


def _shape_range(op, rank: int) -> tuple[int, int]:
    """The dimensions [start, end) a Shape op returns."""
    start, end = op.attr("start", 0), op.attr("end", rank)
    start = normalize_axis(start, rank) if start < 0 else min(start, rank)
    end = normalize_axis(end, rank) if end < 0 else min(end, rank)
    return start, end


def _static_piece(graph, shape_value, position: int, types) -> bool:
    """True if the Concat piece holding element `position` of a shape is static throughout (a
    constant can replace it)."""
    pieces = flat_pieces(graph, shape_value)
    offset = 0
    for piece in pieces:
        traced = trace_elements(graph, piece, types)
        if traced is None:
            return False
        if offset <= position < offset + len(traced):
            return all(e is not None and not e.dynamic for e in traced)
        offset += len(traced)
    return False


def _one_element_piece(graph, shape_value, position: int, types) -> bool:
    """True if element `position` of a Concat-built shape is a piece of its own (a rescaled copy can
    replace it)."""
    concat = graph.producer(shape_value)
    if concat is None or concat.op_type != "Concat":
        return False
    offset = 0
    for piece in flat_pieces(graph, shape_value):
        traced = trace_elements(graph, piece, types)
        length = len(traced) if traced is not None else None
        if length is None:
            return False
        if offset == position:
            return length == 1
        offset += length
    return False


def _is_unstacked(graph, value, axis: int, types, depth: int = 0) -> bool:
    """True if axis `axis` of `value` is only ever taken apart into single slices by constant scalar
    Gathers or a Split into unit pieces (after Transpose/Unsqueeze/Squeeze that move it): the stacked
    q, k, v of a fused projection, which are separate tensors, not channels."""
    if depth > 8 or graph.is_output(value) or not graph.uses(value):
        return False
    found = types.get(value.name) if types is not None else None
    rank = found.rank if found is not None else None
    for op, slot in graph.uses(value):
        kind = op.op_type if op.domain in ("", "ai.onnx") else ""
        out = graph.outputs_of(op)[0]
        if slot != 0 or rank is None:
            return False
        if kind == "Gather":
            indices = constant_value(graph, graph.inputs_of(op)[1])
            if indices is None or np.ndim(indices) != 0 or normalize_axis(op.attr("axis", 0), rank) != axis:
                return False
        elif kind == "Split":
            sizes = [types.get(o.name).shape[axis] if o is not None and types.get(o.name) is not None and
                     types.get(o.name).shape else None for o in graph.outputs_of(op)]
            if normalize_axis(op.attr("axis", 0), rank) != axis or any(size != 1 for size in sizes):
                return False
        elif kind == "Transpose":
            perm = op.attr("perm") or list(reversed(range(rank)))
            if not _is_unstacked(graph, out, list(perm).index(axis), types, depth + 1):
                return False
        elif kind in ("Unsqueeze", "Squeeze"):
            axes = op.attr("axes")
            if axes is None and len(graph.inputs_of(op)) > 1:
                axes = constant_value(graph, graph.inputs_of(op)[1])
            if axes is None:
                return False
            axes = [int(x) for x in np.reshape(axes, -1)]
            if kind == "Unsqueeze":
                out_rank = rank + len(axes)
                added = sorted(normalize_axis(x, out_rank) for x in axes)
                kept = [a for a in range(out_rank) if a not in added]
                new = kept[axis]
            else:
                removed = {normalize_axis(x, rank) for x in axes}
                if axis in removed:
                    return False
                new = axis - sum(1 for x in removed if x < axis)
            if not _is_unstacked(graph, out, new, types, depth + 1):
                return False
        else:
            return False
    return True


def rewrite_reshape(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Write the new sizes of shrunk output axes into the shape input (copy-on-write): static sizes
    (constants, and static dimensions read by Shape) are replaced by the new size, a dynamic product
    times a constant is rescaled at run time, and 0, -1 and dynamic dimensions read from a tied axis
    adapt by themselves."""
    shape_value = graph.inputs_of(op)[1]
    types = analysis_types(graph, view.types)  # decide as the rule did, with the types it saw
    elements = trace_elements(graph, shape_value, types)
    changes, scaled = {}, []
    for key, indices in kept.items():
        if key.side != OUT:
            continue
        element = elements[key.axis] if elements is not None and key.axis < len(elements) else None
        if element is None:
            raise AssertionError(f"{op.label}: the target element of axis {key.axis} cannot be traced to rewrite it")
        if not element.dynamic and element.coef in (0, -1):
            continue
        tied = element.read is not None and _pure_read(graph, types, element)
        if tied and (element.dynamic or not _static_piece(graph, shape_value, key.axis, types)):
            continue  # read from the tied axis, which shrinks alike (prune-space froze this axis otherwise)
        if not tied and (element.dynamic or element.shaped):  # rescaled at run time: bound dims stay dynamic
            scaled.append((key.axis, strip_stand_ins(len(indices)), element.coef))
        else:
            changes[key.axis] = len(indices)
    rewrite_shape_elements(graph, op, 1, changes, types)
    for position, numerator, denominator in scaled:
        rewrite_scaled_element(graph, op, 1, position, numerator, denominator, types)


def couple_squeeze_unsqueeze(view: OpView) -> Coupling | None:
    """Squeeze/Unsqueeze: the axes that stay keep their identity, in order."""
    src = view.inputs[0].shape if view.inputs[0] is not None else None
    dst = view.outputs[0].shape if view.outputs[0] is not None else None
    if src is None or dst is None:
        return None
    axes = view.op.attr("axes")
    if axes is None and view.has_input(1):
        found = view.constant(1)
        if found is None:
            return None
        axes = [int(a) for a in np.asarray(found).reshape(-1)]
    if view.op.op_type == "Squeeze":
        removed = {a for a, d in enumerate(src) if d == 1} if axes is None else \
            {normalize_axis(a, len(src)) for a in axes}
        kept_in = [a for a in range(len(src)) if a not in removed]
        if len(kept_in) != len(dst):
            return None
        pairs = list(zip(kept_in, range(len(dst))))
    else:
        added = {normalize_axis(a, len(dst)) for a in (axes or [])}
        kept_out = [a for a in range(len(dst)) if a not in added]
        if len(kept_out) != len(src):
            return None
        pairs = list(zip(range(len(src)), kept_out))
    return Coupling(same=[(ax_in(0, i), ax_out(0, o)) for i, o in pairs], zero=zero_first)


@_sees_analysis_types
def rewrite_squeeze(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """A Squeeze without axes removes every size-1 axis: once a channel axis shrinks to one it would go
    too. Name the originally squeezed axes explicitly."""
    if op.op_type != "Squeeze" or op.attr("axes") is not None or (len(view.present) > 1 and view.present[1]):
        return
    axes = [a for a, d in enumerate(view.inputs[0].shape) if d == 1]
    if graph.opset < 13:
        graph.set_attr(op, "axes", axes)
    else:
        graph.set_input(op, 1, graph.add_initializer(graph.fresh_name(f"{op.name or 'squeeze'}_axes"),
                                                     np.array(axes, dtype=np.int64)))


def couple_concat(view: OpView) -> Coupling | None:
    """Concat: along the axis, input j owns the output indices at its offset; other axes pass through."""
    r = rank(view, OUT, 0)
    if r is None:
        return None
    axis = normalize_axis(view.op.attr("axis"), r)
    coupling = Coupling(zero=zero_all_carrying)
    if any(rank(view, IN, slot) != r for slot in range(len(view.inputs))):
        return None
    sizes = [dim(view, IN, slot, axis) for slot in range(len(view.inputs))]
    offset = 0
    for slot, size in enumerate(sizes):
        for a in range(r):
            if a != axis:
                coupling.same.append((ax_in(slot, a), ax_out(0, a)))
        if not all(isinstance(s, int) for s in sizes):  # offsets unknown: only the concat axis freezes
            coupling.frozen.append((ax_in(slot, axis), "Concat of pieces whose sizes are not static"))
            continue
        coupling.links.append((ax_in(slot, axis), np.arange(size), ax_out(0, axis), offset + np.arange(size)))
        offset += size
    if not all(isinstance(s, int) for s in sizes):
        coupling.frozen.append((ax_out(0, axis), "Concat of pieces whose sizes are not static"))
    _param_roles(view, coupling, list(range(len(view.inputs))), PRODUCER)
    return coupling


def couple_split(view: OpView) -> Coupling | None:
    """Split: output j takes the input indices at its offset along the axis (sizes are rewritten)."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    axis = normalize_axis(view.op.attr("axis", 0), r)
    coupling = Coupling(zero=zero_first)
    offset = 0
    for slot in range(len(view.outputs)):
        if view.outputs[slot] is None or rank(view, OUT, slot) != r:
            return None
        size = dim(view, OUT, slot, axis)
        if not isinstance(size, int):
            return None
        for a in range(r):
            if a != axis:
                coupling.same.append((ax_in(0, a), ax_out(slot, a)))
        coupling.links.append((ax_out(slot, axis), np.arange(size), ax_in(0, axis), offset + np.arange(size)))
        offset += size
    if offset != dim(view, IN, 0, axis):
        return None
    return coupling


@_sees_analysis_types
def rewrite_split(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Write the new output sizes as the split input (or attribute before opset 13)."""
    r = rank(view, IN, 0)
    axis = normalize_axis(op.attr("axis", 0), r)
    sizes = [len(kept[ax_out(s, axis)]) if ax_out(s, axis) in kept else dim(view, OUT, s, axis)
             for s in range(len(view.outputs))]
    if graph.opset < 13:
        graph.set_attr(op, "split", [int(s) for s in sizes])
        return
    if view.has_input(1):
        replace_input_constant(graph, op, 1, np.array(sizes, dtype=np.int64))
    else:
        graph.set_input(op, 1, graph.add_initializer(graph.fresh_name(f"{op.name or 'split'}_sizes"),
                                                     np.array(sizes, dtype=np.int64)))
        graph.set_attr(op, "num_outputs", None)


def _slice_params(view: OpView):
    """(starts, ends, axes, steps) as arrays, or None if any is not constant."""
    if view.graph is not None and view.graph.opset < 10:
        starts, ends = view.op.attr("starts"), view.op.attr("ends")
        axes = view.op.attr("axes") or list(range(len(starts)))
        return np.array(starts), np.array(ends), np.array(axes), np.ones(len(starts), dtype=np.int64)
    starts, ends = view.constant(1), view.constant(2)
    if starts is None or ends is None:
        return None
    axes = view.constant(3) if view.has_input(3) else np.arange(len(starts))
    steps = view.constant(4) if view.has_input(4) else np.ones(len(starts), dtype=np.int64)
    if axes is None or steps is None:
        return None
    return np.asarray(starts).reshape(-1), np.asarray(ends).reshape(-1), np.asarray(axes).reshape(-1), \
        np.asarray(steps).reshape(-1)


def couple_slice(view: OpView) -> Coupling | None:
    """Slice with constant bounds: a sliced axis (step 1) maps output j to input start + j; others pass."""
    r = rank(view, IN, 0)
    if r is None or rank(view, OUT, 0) != r:
        return None
    params = _slice_params(view)
    if params is None:  # bounds computed at run time: only the sliced axes are unknown
        axes = view.constant(3) if view.has_input(3) else None
        if axes is None:
            return None
        sliced = {normalize_axis(int(a), r) for a in np.reshape(axes, -1)}
        coupling = Coupling(zero=zero_first)
        for a in range(r):
            if a in sliced:
                coupling.frozen += [(ax_in(0, a), "Slice bounds are computed at run time"),
                                    (ax_out(0, a), "Slice bounds are computed at run time")]
            else:
                coupling.same.append((ax_in(0, a), ax_out(0, a)))
        return coupling
    starts, ends, axes, steps = params
    sliced = {}
    for start, end, axis, step in zip(starts, ends, axes, steps):
        sliced[normalize_axis(int(axis), r)] = (int(start), int(end), int(step))
    coupling = Coupling(zero=zero_first)
    for a in range(r):
        if a not in sliced:
            coupling.same.append((ax_in(0, a), ax_out(0, a)))
            continue
        size, out_size = dim(view, IN, 0, a), dim(view, OUT, 0, a)
        start, end, step = sliced[a]
        if not isinstance(size, int) or not isinstance(out_size, int) or step != 1:
            coupling.frozen.append((ax_in(0, a), "Slice along this axis is not a static step-1 range"))
            coupling.frozen.append((ax_out(0, a), "Slice along this axis is not a static step-1 range"))
            continue
        first = min(max(start + size if start < 0 else start, 0), size)
        coupling.links.append((ax_out(0, a), np.arange(out_size), ax_in(0, a), first + np.arange(out_size)))
    return coupling


@_sees_analysis_types
def rewrite_slice(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Move the bounds of shrunk sliced axes to where the kept indices now sit."""
    r = rank(view, IN, 0)
    starts, ends, axes, steps = _slice_params(view)
    new_starts, new_ends = starts.astype(np.int64).copy(), ends.astype(np.int64).copy()
    changed = False
    for i, axis in enumerate(axes):
        a = normalize_axis(int(axis), r)
        if ax_in(0, a) not in kept:
            continue
        size = dim(view, IN, 0, a)
        first = min(max(int(starts[i]) + size if starts[i] < 0 else int(starts[i]), 0), size)
        last = min(max(int(ends[i]) + size if ends[i] < 0 else int(ends[i]), 0), size)
        remaining = kept[ax_in(0, a)]
        new_starts[i] = int(np.searchsorted(remaining, first))
        new_ends[i] = int(np.searchsorted(remaining, last))
        changed = True
    if not changed:
        return
    if graph.opset < 10:
        graph.set_attr(op, "starts", [int(v) for v in new_starts])
        graph.set_attr(op, "ends", [int(v) for v in new_ends])
    else:
        replace_input_constant(graph, op, 1, new_starts.astype(view.constant(1).dtype))
        replace_input_constant(graph, op, 2, new_ends.astype(view.constant(2).dtype))


def couple_gather(view: OpView) -> Coupling | None:
    """Gather: data axes other than `axis` pass through; the gathered axis maps through constant 1-D
    indices, and freezes under run-time indices (an embedding's vocabulary axis)."""
    r, idx_rank = rank(view, IN, 0), rank(view, IN, 1)
    if r is None or idx_rank is None:
        return None
    axis = normalize_axis(view.op.attr("axis", 0), r)
    coupling = Coupling(zero=zero_first)
    for a in range(axis):
        coupling.same.append((ax_in(0, a), ax_out(0, a)))
    for a in range(axis + 1, r):
        coupling.same.append((ax_in(0, a), ax_out(0, a + idx_rank - 1)))
    indices = view.constant(1)
    size = dim(view, IN, 0, axis)
    if indices is not None and idx_rank == 1 and isinstance(size, int):
        indices = np.where(indices < 0, indices + size, indices).astype(np.int64)
        coupling.links.append((ax_out(0, axis), np.arange(len(indices)), ax_in(0, axis), indices))
    else:
        coupling.frozen.append((ax_in(0, axis), "gathered by run-time or scalar indices"))
    _param_roles(view, coupling, [0], PRODUCER)
    return coupling


@_sees_analysis_types
def rewrite_gather(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Renumber constant indices into the shrunk data axis (and drop pruned positions)."""
    r = rank(view, IN, 0)
    axis = normalize_axis(op.attr("axis", 0), r)
    indices = view.constant(1)
    gathered_out = indices is not None and np.ndim(indices) == 1 and ax_out(0, axis) in kept
    if ax_in(0, axis) not in kept and not gathered_out:
        return  # only axes passing through shrank (a scalar index removes the gathered axis from the output)
    size = dim(view, IN, 0, axis)
    positions = np.arange(len(indices)) if ax_out(0, axis) not in kept else kept[ax_out(0, axis)]
    source = np.where(indices < 0, indices + size, indices)[positions]
    remaining = kept.get(ax_in(0, axis), np.arange(size))
    new = np.searchsorted(remaining, source)
    replace_input_constant(graph, op, 1, new.astype(indices.dtype))


def couple_pad(view: OpView) -> Coupling | None:
    """Pad: unpadded axes pass through; a zero constant (or reflect/edge) padding keeps zeros."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    pads = view.op.attr("pads") if view.graph is not None and view.graph.opset < 11 else view.constant(1)
    if pads is None:
        return None
    pads = np.asarray(pads).reshape(-1)
    axes = list(range(r))
    if view.has_input(3):
        found = view.constant(3)
        if found is None:
            return None
        axes = [normalize_axis(int(a), r) for a in np.asarray(found).reshape(-1)]
    padded = {a for i, a in enumerate(axes) if pads[i] != 0 or pads[i + len(axes)] != 0}
    mode = view.op.attr("mode", "constant")
    value = view.constant(2) if view.has_input(2) else 0.0
    keeps_zero = mode != "constant" or (value is not None and float(np.asarray(value).reshape(-1)[0]) == 0.0)
    coupling = Coupling(zero=zero_first if keeps_zero else zero_never)
    for a in range(r):
        if a in padded:
            coupling.frozen.append((ax_in(0, a), "Pad pads along this axis"))
        else:
            coupling.same.append((ax_in(0, a), ax_out(0, a)))
    return coupling


def couple_expand(view: OpView) -> Coupling | None:
    """Expand: axes that keep their size pass through, broadcast ones couple to nothing. The target
    element of a kept axis must stay right when it shrinks: 1 (keep), a static size (rewritten), or a
    dimension read at run time from the axis it sizes (tied, as for Reshape; torch writes its expand
    target through Where(shape == -1, 1, shape))."""
    coupling = Coupling(zero=zero_first)
    if not broadcast_coupling(view, [0], coupling):
        return None
    elements = trace_elements(view.graph, view.graph.inputs_of(view.op)[1], view.types) \
        if view.graph is not None else None
    out_rank = rank(view, OUT, 0)
    for _, out_axis in [(a, b) for a, b in coupling.same]:
        position = out_axis.axis - (out_rank - len(elements)) if elements is not None else -1
        element = elements[position] if elements is not None and position >= 0 else None
        if element is not None and not element.dynamic and element.coef in (1, -1) and element.read is None:
            continue  # keeps the input's size, whatever it becomes
        _require_rewritable(view, coupling, out_axis.axis, elements, position)
    return coupling


def rewrite_expand(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Write the new sizes of shrunk axes into the target shape where they are static; 1 and dimensions
    read from a tied axis adapt by themselves."""
    target = graph.inputs_of(op)[1]
    types = analysis_types(graph, view.types)  # decide as the rule did, with the types it saw
    elements = trace_elements(graph, target, types)
    out_rank = rank(view, OUT, 0)
    changes, scaled = {}, []
    for o in range(out_rank):
        position = o - (out_rank - len(elements))
        if ax_out(0, o) not in kept or position < 0:
            continue
        element = elements[position]
        if element is None:
            raise AssertionError(f"{op.label}: the target element of axis {o} cannot be traced to rewrite it")
        if element.read is None and not element.dynamic and element.coef in (1, -1):
            continue
        tied = element.read is not None and _pure_read(graph, types, element)
        if tied and (element.dynamic or not _static_piece(graph, target, position, types)):
            continue
        if not tied and (element.dynamic or element.shaped):
            scaled.append((position, strip_stand_ins(len(kept[ax_out(0, o)])), element.coef))
        else:
            changes[position] = len(kept[ax_out(0, o)])
    if changes and graph.producer(target) is not None and graph.producer(target).op_type not in ("Concat", "Where") \
            and constant_value(graph, target) is None:
        raise AssertionError(f"{op.label}: a static target size sits behind {graph.producer(target).op_type}")
    rewrite_shape_elements(graph, op, 1, changes, types)
    for position, numerator, denominator in scaled:
        rewrite_scaled_element(graph, op, 1, position, numerator, denominator, types)


def couple_tile(view: OpView) -> Coupling | None:
    """Tile: axes repeated once pass through; repeated axes freeze."""
    r = rank(view, IN, 0)
    repeats = view.constant(1)
    if r is None or repeats is None:
        return None
    coupling = Coupling(zero=zero_first)
    for a, times in enumerate(np.asarray(repeats).reshape(-1)):
        if times == 1:
            coupling.same.append((ax_in(0, a), ax_out(0, a)))
        else:
            coupling.frozen.append((ax_in(0, a), "Tile repeats this axis"))
    return coupling


def couple_resize(view: OpView) -> Coupling | None:
    """Resize/Upsample over space: axes whose constant scale is exactly 1 (batch, channels) pass through;
    explicit output sizes, a region of interest or unknown scales freeze."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    coupling = Coupling(zero=zero_first)
    if view.op.attr("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        return coupling.freeze_all(view, "Resize crops a region of every axis (tf_crop_and_resize)")
    scale_slot = 1 if view.op.op_type == "Upsample" else 2
    scales = view.constant(scale_slot) if view.has_input(scale_slot) else None
    if view.op.op_type == "Resize" and view.graph is not None and view.graph.opset < 11:
        scales = view.constant(1)
    if view.op.op_type == "Upsample" and view.op.attr("scales") is not None:
        scales = np.asarray(view.op.attr("scales"))
    for a in range(r):
        if scales is not None and len(np.reshape(scales, -1)) == r and float(np.reshape(scales, -1)[a]) == 1.0:
            coupling.same.append((ax_in(0, a), ax_out(0, a)))
        else:
            coupling.frozen.append((ax_in(0, a), f"{view.op.op_type} scales this axis (or its scale is not constant)"))
            coupling.frozen.append((ax_out(0, a), f"{view.op.op_type} scales this axis (or its scale is not constant)"))
    return coupling


def couple_shape_reader(view: OpView) -> Coupling | None:
    """Shape/Size read dimensions: the dimensions whose values are used must keep their size. For
    Shape, elements picked out by constant Slice/Gather (through Cast) are the only ones used."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    start, end = 0, r
    used = set(range(r))
    if view.op.op_type == "Shape":
        start = normalize_axis(view.op.attr("start", 0), r)
        end = view.op.attr("end", r)
        end = normalize_axis(end, r) if end < 0 else min(end, r)
        if view.graph is not None:
            output = view.graph.outputs_of(view.op)[0]
            used = {start + i for i in _used_elements(view.graph, output, end - start)}
    coupling = Coupling(zero=zero_never)
    output = view.graph.outputs_of(view.op)[0] if view.graph is not None else None
    for a in range(r):
        if start <= a < end and a in used and not (
                view.op.op_type == "Shape" and read_only_into_shapes(view.graph, output, a - start, end - start,
                                                                     (view.graph.inputs_of(view.op)[0].name, a),
                                                                     view.types)):
            coupling.frozen.append((ax_in(0, a), f"{view.op.op_type} reads this dimension"))
        else:  # not read, or read only into Reshape targets, whose rule ties it to the axis it sizes
            coupling.unconstrained.append(ax_in(0, a))
    return coupling


def _used_elements(graph, value, length: int) -> set[int]:
    """Positions of a 1-D shape vector that its readers use: constant Slices and Gathers (possibly
    after Cast/Identity) use what they select; any other reader uses everything."""
    everything = set(range(length))
    if value is None or graph.is_output(value) or graph.captures_of_value(value):
        return everything
    used: set[int] = set()
    for consumer, slot in graph.uses(value):
        kind = consumer.op_type if consumer.domain in ("", "ai.onnx") else ""
        if kind in ("Cast", "Identity"):
            used |= _used_elements(graph, graph.outputs_of(consumer)[0], length)
        elif kind == "Slice" and slot == 0 and graph.opset >= 10:
            inputs = graph.inputs_of(consumer)
            found = [fixed_value(graph, inputs[i]) if i < len(inputs) and inputs[i] is not None else None
                     for i in (1, 2, 3, 4)]
            starts, ends, axes, steps = found
            if starts is None or ends is None or (axes is not None and list(np.reshape(axes, -1)) != [0]) or \
                    (steps is not None and list(np.reshape(steps, -1)) != [1]):
                return everything
            first, last = int(np.reshape(starts, -1)[0]), int(np.reshape(ends, -1)[0])
            first = min(max(first + length if first < 0 else first, 0), length)
            last = min(max(last + length if last < 0 else last, 0), length)
            used |= set(range(first, last))
        elif kind == "Gather" and slot == 0 and consumer.attr("axis", 0) == 0:
            indices = constant_value(graph, graph.inputs_of(consumer)[1])
            if indices is None:
                return everything
            used |= {int(i) % length for i in np.reshape(indices, -1)}
        else:
            return everything
    return used


def couple_depth_space(view: OpView) -> Coupling | None:
    """DepthToSpace/SpaceToDepth move channels into space and back: the batch passes, the rest freezes."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    coupling = Coupling(same=[(ax_in(0, 0), ax_out(0, 0))], zero=zero_first)
    for a in range(1, r):
        coupling.frozen += [(ax_in(0, a), f"{view.op.op_type} mixes channels and space"),
                            (ax_out(0, a), f"{view.op.op_type} mixes channels and space")]
    return coupling


def couple_source(view: OpView) -> Coupling | None:
    """Ops that make tensors from attributes or shapes (Constant, ConstantOfShape, Range, ...): a
    Constant's tensor is a parameter like an initializer; computed shapes freeze."""
    coupling = Coupling(zero=zero_never)
    for slot in range(len(view.outputs)):
        for a in range(rank(view, OUT, slot) or 0):
            if view.op.op_type == "Constant":  # a parameter: its consumers' rules govern its axes
                coupling.unconstrained.append(ax_out(slot, a))
            else:
                coupling.frozen.append((ax_out(slot, a), f"{view.op.op_type} output shape is computed"))
    return coupling


# ---------------------------------------------------------------------- quantization (QDQ)
def _quantization_axis(view: OpView) -> int | None | bool:
    """The axis a QuantizeLinear/DequantizeLinear scale runs along: None per tensor, False for a form
    the rules leave frozen (blocked quantization, unknown ranks)."""
    scale, data_rank = view.inputs[1] if len(view.inputs) > 1 else None, rank(view, IN, 0)
    if scale is None or scale.rank is None or data_rank is None or view.op.attr("block_size", 0):
        return False
    if scale.rank == 0 or (scale.rank == 1 and scale.shape[0] == 1):
        return None
    return normalize_axis(view.op.attr("axis", 1), data_rank) if scale.rank == 1 else False


def _zero_point_is_zero(view: OpView) -> bool:
    """True when the zero point is absent or a constant of zeros."""
    if not view.has_input(2):
        return True
    found = view.constant(2)
    return found is not None and not np.any(found)


def _couple_quantization(view: OpView, scale_role: str) -> Coupling | None:
    coupling = identity_coupling(view)
    axis = _quantization_axis(view)
    if coupling is None or axis is False:
        return None
    zero_point_zero = _zero_point_is_zero(view)
    params = [slot for slot in (1, 2) if view.has_input(slot)]
    if axis is None:  # per tensor: elementwise
        for slot in params:
            coupling.unconstrained += [ax_in(slot, a) for a in range(rank(view, IN, slot) or 0)]
        coupling.zero = zero_first if zero_point_zero else zero_never
        return coupling
    for slot in params:
        coupling.same.append((ax_in(slot, 0), ax_out(0, axis)))
        coupling.roles[ax_in(slot, 0)] = scale_role if slot == 1 else PRODUCER

    def zero(flags, out_slot=0):
        cleared = flags[0] is True and (zero_point_zero or flag(flags, 2) is True)
        return cleared or (scale_role == PRODUCER and flags[1] is True)
    coupling.zero = zero
    return coupling


def couple_dequantize(view: OpView) -> Coupling | None:
    """DequantizeLinear y = (x - zero_point) * scale: axes pass through. A per-axis scale and zero point
    run along their axis and are sliced with it (a zero scale zeroes its channel); elsewhere a zero
    slice stays zero only when the zero point is 0 (an asymmetric uint8 zero point of 128 does not)."""
    return _couple_quantization(view, PRODUCER)


def couple_quantize(view: OpView) -> Coupling | None:
    """QuantizeLinear y = saturate(round(x / scale) + zero_point): axes pass through; a zero slice stays
    zero only when the zero point is 0. A per-axis scale is only sliced (zeroing it would divide by 0)."""
    return _couple_quantization(view, CONSUMER)


__all__ = [name for name in dir() if name.startswith(("couple_", "rewrite_"))] + ["PRODUCER", "CONSUMER", "OUT"]
