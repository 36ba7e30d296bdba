"""Coupling rules of convolution and linear algebra: Conv, ConvTranspose, Gemm, MatMul, Einsum.

See `coupling.py` for the vocabulary. These ops produce channels (their weights are the parameters a
family removes) and contract them (their input-channel axes are sinks).
"""

from __future__ import annotations

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
    dim,
    flag,
    rank,
    zero_any,
)
from .rule import OpView
from .shape_refine import sees_analysis_types


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


@sees_analysis_types
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
