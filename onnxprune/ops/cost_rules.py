"""Cost formulas for each op family (see `rule.py` for the conventions)."""

from __future__ import annotations

from ..ir import FLOAT_TYPES
from .rule import Cost, OpView, numel

# Only floating-point arithmetic counts as FLOPs (`FLOAT_TYPES`). Integer and boolean elementwise ops are
# shape arithmetic and masks (Shape -> Gather -> Mul), which compact may add or drop: they cost none.


def per_output_element(flops_per_element: int):
    """Cost of `flops_per_element` FLOPs per output element (none for integer or boolean outputs)."""
    def cost(view: OpView) -> Cost | None:
        shape = view.output_shape(0)
        if shape is None:
            return None
        out = view.outputs[0] if view.outputs else None
        if out is not None and out.elem_type and out.elem_type not in FLOAT_TYPES:
            return Cost()
        return Cost(0, flops_per_element * numel(shape))
    return cost


def per_input_element(view: OpView) -> Cost | None:
    """One FLOP per input element (reductions, global pools)."""
    shape = view.input_shape(0)
    return None if shape is None else Cost(0, numel(shape))


def free(view: OpView) -> Cost:
    """Data movement costs nothing."""
    return Cost()


def conv_cost(view: OpView) -> Cost | None:
    """Conv: N * Cout * out_spatial * (Cin / group) * kernel MACs; bias adds one FLOP per output."""
    out, weight = view.output_shape(0), view.input_shape(1)
    if out is None or weight is None:
        return None
    macs = numel(out) * numel(weight[1:])  # weight is [Cout, Cin/group, k...]
    bias = numel(out) if view.has_input(2) else 0
    return Cost(macs, 2 * macs + bias)


def conv_transpose_cost(view: OpView) -> Cost | None:
    """ConvTranspose: every input element scatters into Cout/group * kernel outputs."""
    x, weight, out = view.input_shape(0), view.input_shape(1), view.output_shape(0)
    if x is None or weight is None or out is None:
        return None
    macs = numel(x) * numel(weight[1:])  # weight is [Cin, Cout/group, k...]
    bias = numel(out) if view.has_input(2) else 0
    return Cost(macs, 2 * macs + bias)


def gemm_cost(view: OpView) -> Cost | None:
    """Gemm: M*N*K MACs, plus M*N for the C input."""
    a, out = view.input_shape(0), view.output_shape(0)
    if a is None or out is None:
        return None
    k = a[0] if view.op.attr("transA", 0) else a[1]
    macs = numel(out) * k
    return Cost(macs, 2 * macs + (numel(out) if view.has_input(2) else 0))


def matmul_cost(view: OpView) -> Cost | None:
    """MatMul: output elements * K MACs (K is the contracted axis of the first input)."""
    a, out = view.input_shape(0), view.output_shape(0)
    if a is None or out is None:
        return None
    macs = numel(out) * a[-1]
    return Cost(macs, 2 * macs)


def einsum_cost(view: OpView) -> Cost | None:
    """Einsum: one multiply-accumulate per point of the product of all distinct letters' sizes."""
    equation = view.op.attr("equation", "").replace(" ", "")
    if "->" not in equation or "." in equation:
        return None
    terms = equation.split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for index, term in enumerate(terms):
        shape = view.input_shape(index)
        if shape is None or len(shape) != len(term):
            return None
        sizes.update(zip(term, shape))
    macs = numel(tuple(sizes.values()))
    return Cost(macs, 2 * macs)


def window_pool_cost(view: OpView) -> Cost | None:
    """MaxPool/AveragePool/LpPool: one FLOP per window element per output element."""
    out = view.output_shape(0)
    kernel = view.op.attr("kernel_shape")
    if out is None or kernel is None:
        return None
    return Cost(0, numel(out) * numel(tuple(kernel)))
