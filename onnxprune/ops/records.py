"""The op table: one `OpRecord` per op type (see `registry.py` for what a record holds).

Adding support for an op means adding its record here and its entry in the conformance test
(`tests/test_conformance.py`), which checks compact ≡ masked for it on generated graphs. Ops that
share every field are listed together through `_each`, which still makes one record per op type.

Training statuses come from the gradient builders that onnxruntime-training 1.19.2 registers (the
`Get*Gradient` builders of its wheel) and from ORT_TRAINING_NOTES.md: an op not stated differentiable,
rewritten or path-ending here is refused on a weight path (an allow-list: fail closed).
"""

from __future__ import annotations

from .cost_rules import (
    conv_cost,
    conv_transpose_cost,
    einsum_cost,
    free,
    gemm_cost,
    matmul_cost,
    per_input_element,
    per_output_element,
    window_pool_cost,
)
from .couple_elementwise import (
    couple_add_like,
    couple_clip,
    couple_div,
    couple_dropout,
    couple_mul,
    couple_pow,
    couple_prelu,
    couple_unary_infinite,
    couple_unary_keeps_zero,
    couple_unary_nonzero,
    couple_where,
)
from .couple_linear import couple_conv, couple_conv_transpose, couple_einsum, couple_gemm, couple_matmul, rewrite_conv
from .couple_movement import (
    couple_concat,
    couple_depth_space,
    couple_expand,
    couple_gather,
    couple_pad,
    couple_resize,
    couple_shape_reader,
    couple_slice,
    couple_source,
    couple_split,
    couple_tile,
    rewrite_expand,
    rewrite_gather,
    rewrite_slice,
    rewrite_split,
)
from .couple_norm import (
    couple_batchnorm,
    couple_groupnorm,
    couple_instancenorm,
    couple_layernorm,
    couple_pool,
    couple_reduce,
    couple_softmax,
)
from .couple_quant import couple_dequantize, couple_quantize
from .couple_reshape import (
    couple_flatten,
    couple_reshape,
    couple_squeeze_unsqueeze,
    couple_transpose,
    rewrite_reshape,
    rewrite_squeeze,
)
from .coupling import CouplingRule
from .legalizations import (
    average_pool,
    cast_like,
    conv_transpose,
    exp_linear,
    global_max_pool,
    group_norm,
    hard_sigmoid,
    instance_norm,
    layer_norm_outputs,
    prelu,
    reduce_sum_square,
    resize_nearest,
    softplus_family,
    variadic_sum,
)
from .registry import (
    ALL,
    ANY,
    DIFFERENTIABLE,
    FIRST,
    PRODUCERS,
    OpRecord,
    Training,
    Zero,
    install,
)

ONE = per_output_element(1)
KEEPS_ZERO = CouplingRule(couple_unary_keeps_zero)
FIRST_ZERO = Zero(FIRST)
WEIGHTS_AND_BIAS = Zero(PRODUCERS, (1, 2))  # Conv, Gemm, norms: weight (or scale) and bias (or shift)


def _each(op_types: str, **fields) -> tuple[OpRecord, ...]:
    """One record per op type named in `op_types` (space-separated), all with the same fields."""
    return tuple(OpRecord(op_type, **fields) for op_type in op_types.split())


def _rewritten(rewrite, devices=("cpu", "cuda"), why: str = "no gradient builder in onnxruntime-training 1.19",
               gradient=(), constant_slots=()) -> Training:
    return Training(gradient=tuple(gradient), rewrite=rewrite, rewrite_devices=tuple(devices), why=why,
                    constant_slots=frozenset(constant_slots))


def _differentiable(*constant_slots: int) -> Training:
    """onnxruntime differentiates it; the listed input slots are shapes, indices or bounds."""
    return Training(gradient=("cpu", "cuda"), constant_slots=frozenset(constant_slots))


#: Outputs are integer or boolean (shapes, masks, indices): no gradient flows through, nothing to refuse.
ENDS_PATH = Training(ends_path=True)


def _ends_path(*constant_slots: int) -> Training:
    return Training(ends_path=True, constant_slots=frozenset(constant_slots))


RECORDS: tuple[OpRecord, ...] = (
    # convolution and linear algebra: the producers of channels
    OpRecord("Conv", conv_cost, CouplingRule(couple_conv, rewrite_conv), WEIGHTS_AND_BIAS, training=DIFFERENTIABLE),
    OpRecord("ConvTranspose", conv_transpose_cost, CouplingRule(couple_conv_transpose), WEIGHTS_AND_BIAS,
             training=_rewritten(conv_transpose, ("cpu",), "no CPU gradient kernel", gradient=("cuda",))),
    OpRecord("Gemm", gemm_cost, CouplingRule(couple_gemm), WEIGHTS_AND_BIAS, training=DIFFERENTIABLE),
    OpRecord("MatMul", matmul_cost, CouplingRule(couple_matmul), Zero(PRODUCERS, (1,)), training=DIFFERENTIABLE),
    OpRecord("Einsum", einsum_cost, CouplingRule(couple_einsum)),
    # elementwise, f(0) = 0
    *_each("Relu LeakyRelu Tanh Gelu Erf", cost=ONE, coupling=KEEPS_ZERO, zero=FIRST_ZERO, training=DIFFERENTIABLE),
    *_each("Neg Abs", cost=ONE, coupling=KEEPS_ZERO, zero=FIRST_ZERO, fold=True, training=DIFFERENTIABLE),
    OpRecord("Sqrt", ONE, KEEPS_ZERO, fold=True, training=DIFFERENTIABLE),
    OpRecord("Sin", ONE, KEEPS_ZERO, training=DIFFERENTIABLE),
    *_each("Elu Selu Celu", cost=ONE, coupling=KEEPS_ZERO, training=_rewritten(exp_linear)),
    OpRecord("Mish", ONE, KEEPS_ZERO, FIRST_ZERO, training=_rewritten(softplus_family)),
    OpRecord("Softsign", ONE, KEEPS_ZERO, training=_rewritten(softplus_family)),
    OpRecord("HardSwish", ONE, KEEPS_ZERO, FIRST_ZERO, training=_rewritten(hard_sigmoid)),
    *_each("Sign Floor Ceil Round ThresholdedRelu", cost=ONE, coupling=KEEPS_ZERO),
    *_each("Tan Asin Atan Sinh Asinh Atanh", cost=ONE, coupling=KEEPS_ZERO),
    OpRecord("Identity", free, KEEPS_ZERO, FIRST_ZERO, transparent=True, evaluate=True, training=DIFFERENTIABLE),
    OpRecord("Cast", free, KEEPS_ZERO, FIRST_ZERO, transparent=True, fold=True, evaluate=True,
             training=DIFFERENTIABLE),
    # elementwise, f(0) != 0
    *_each("Sigmoid Exp Cos", cost=ONE, coupling=CouplingRule(couple_unary_nonzero), training=DIFFERENTIABLE),
    OpRecord("HardSigmoid", ONE, CouplingRule(couple_unary_nonzero), training=_rewritten(hard_sigmoid)),
    OpRecord("Softplus", ONE, CouplingRule(couple_unary_nonzero), training=_rewritten(softplus_family)),
    *_each("Cosh Acos", cost=ONE, coupling=CouplingRule(couple_unary_nonzero)),
    *_each("IsNaN IsInf", cost=ONE, coupling=CouplingRule(couple_unary_nonzero), training=ENDS_PATH),
    OpRecord("Not", ONE, CouplingRule(couple_unary_nonzero), training=_ends_path(0)),
    OpRecord("Log", ONE, CouplingRule(couple_unary_infinite), training=DIFFERENTIABLE),
    OpRecord("Reciprocal", ONE, CouplingRule(couple_unary_infinite), fold=True, training=DIFFERENTIABLE),
    OpRecord("Dropout", free, CouplingRule(couple_dropout), FIRST_ZERO, training=_differentiable(1, 2)),
    OpRecord("Clip", ONE, CouplingRule(couple_clip), training=_differentiable(1, 2)),
    OpRecord("PRelu", ONE, CouplingRule(couple_prelu), FIRST_ZERO, training=_rewritten(prelu)),
    # elementwise with several inputs
    OpRecord("Add", ONE, CouplingRule(couple_add_like), Zero(ALL), fold=True, evaluate=True, training=DIFFERENTIABLE),
    OpRecord("Sub", ONE, CouplingRule(couple_add_like), fold=True, evaluate=True, training=DIFFERENTIABLE),
    *_each("Max Min", cost=ONE, coupling=CouplingRule(couple_add_like), training=DIFFERENTIABLE),
    OpRecord("Sum", ONE, CouplingRule(couple_add_like), Zero(ALL), training=_rewritten(variadic_sum)),
    OpRecord("Mean", ONE, CouplingRule(couple_add_like), training=_rewritten(variadic_sum)),
    OpRecord("Mul", ONE, CouplingRule(couple_mul), Zero(ANY), fold=True, evaluate=True, training=DIFFERENTIABLE),
    OpRecord("Div", ONE, CouplingRule(couple_div), fold=True, evaluate=True, training=DIFFERENTIABLE),
    OpRecord("Pow", ONE, CouplingRule(couple_pow), fold=True, training=_differentiable(1)),
    OpRecord("Where", ONE, CouplingRule(couple_where), training=_differentiable(0)),
    OpRecord("Mod", ONE, evaluate=True, training=ENDS_PATH),
    *_each("And Or Xor", cost=ONE, training=ENDS_PATH),
    *_each("Equal Less LessOrEqual Greater GreaterOrEqual", cost=ONE, training=_ends_path(0, 1)),
    # normalisation
    OpRecord("BatchNormalization", per_output_element(2), CouplingRule(couple_batchnorm), WEIGHTS_AND_BIAS,
             training=_differentiable(3, 4)),
    OpRecord("InstanceNormalization", per_output_element(5), CouplingRule(couple_instancenorm), WEIGHTS_AND_BIAS,
             training=_rewritten(instance_norm)),
    OpRecord("LayerNormalization", per_output_element(5), CouplingRule(couple_layernorm), WEIGHTS_AND_BIAS,
             training=_rewritten(layer_norm_outputs, why="its gradient needs the Mean and InvStdDev outputs")),
    OpRecord("GroupNormalization", per_output_element(5), CouplingRule(couple_groupnorm), WEIGHTS_AND_BIAS,
             training=_rewritten(group_norm)),
    *_each("Softmax LogSoftmax", cost=per_output_element(3), coupling=CouplingRule(couple_softmax),
           training=DIFFERENTIABLE),
    OpRecord("Hardmax", per_output_element(1), CouplingRule(couple_softmax)),
    # pooling and reductions
    OpRecord("MaxPool", window_pool_cost, CouplingRule(couple_pool), FIRST_ZERO, training=DIFFERENTIABLE),
    OpRecord("AveragePool", window_pool_cost, CouplingRule(couple_pool), FIRST_ZERO,
             training=_rewritten(average_pool, why="its training kernel can crash on a dynamic batch axis")),
    OpRecord("LpPool", window_pool_cost, CouplingRule(couple_pool)),
    OpRecord("GlobalAveragePool", per_input_element, CouplingRule(couple_pool), FIRST_ZERO, training=DIFFERENTIABLE),
    OpRecord("GlobalMaxPool", per_input_element, CouplingRule(couple_pool), FIRST_ZERO,
             training=_rewritten(global_max_pool)),
    OpRecord("GlobalLpPool", per_input_element, CouplingRule(couple_pool)),
    *_each("ReduceMean ReduceSum", cost=per_input_element, coupling=CouplingRule(couple_reduce), zero=FIRST_ZERO,
           training=_differentiable(1)),
    *_each("ReduceL2 ReduceLogSumExp", cost=per_input_element, coupling=CouplingRule(couple_reduce),
           training=_differentiable(1)),
    OpRecord("ReduceSumSquare", per_input_element, CouplingRule(couple_reduce), training=_rewritten(reduce_sum_square)),
    *_each("ReduceMax ReduceMin ReduceProd ReduceL1 ReduceLogSum", cost=per_input_element,
           coupling=CouplingRule(couple_reduce)),
    *_each("ArgMax ArgMin", cost=per_input_element),
    # moving data
    OpRecord("Transpose", free, CouplingRule(couple_transpose), FIRST_ZERO, transparent=True, fold=True,
             training=DIFFERENTIABLE),
    OpRecord("Flatten", free, CouplingRule(couple_flatten), FIRST_ZERO, transparent=True, fold=True,
             training=DIFFERENTIABLE),
    OpRecord("Reshape", free, CouplingRule(couple_reshape, rewrite_reshape), FIRST_ZERO, transparent=True, fold=True,
             evaluate=True, training=_differentiable(1)),
    *_each("Squeeze Unsqueeze", cost=free, coupling=CouplingRule(couple_squeeze_unsqueeze, rewrite_squeeze),
           zero=FIRST_ZERO, transparent=True, fold=True, evaluate=True, training=_differentiable(1)),
    OpRecord("Concat", free, CouplingRule(couple_concat), Zero(ALL), fold=True, evaluate=True,
             training=DIFFERENTIABLE),
    OpRecord("Split", free, CouplingRule(couple_split, rewrite_split), FIRST_ZERO, fold=True,
             training=_differentiable(1)),
    OpRecord("Slice", free, CouplingRule(couple_slice, rewrite_slice), FIRST_ZERO, fold=True, evaluate=True,
             training=_differentiable(1, 2, 3, 4)),
    OpRecord("Gather", free, CouplingRule(couple_gather, rewrite_gather), FIRST_ZERO, fold=True, evaluate=True,
             training=_differentiable(1)),
    OpRecord("Pad", free, CouplingRule(couple_pad), FIRST_ZERO, training=_differentiable(1, 2, 3)),
    OpRecord("Expand", free, CouplingRule(couple_expand, rewrite_expand), FIRST_ZERO, fold=True,
             training=_differentiable(1)),
    OpRecord("Tile", free, CouplingRule(couple_tile), FIRST_ZERO, fold=True, training=_differentiable(1)),
    OpRecord("Resize", free, CouplingRule(couple_resize), FIRST_ZERO,
             training=_rewritten(resize_nearest, ("cpu",), "no CPU gradient kernel", gradient=("cuda",),
                                 constant_slots=(1, 2, 3))),
    OpRecord("Upsample", free, CouplingRule(couple_resize), FIRST_ZERO, until=9,
             training=_rewritten(resize_nearest, ("cpu",), "no CPU gradient kernel", constant_slots=(1,))),
    OpRecord("Shape", free, CouplingRule(couple_shape_reader), evaluate=True, training=_ends_path(0)),
    OpRecord("Size", free, CouplingRule(couple_shape_reader), training=_ends_path(0)),
    OpRecord("Constant", free, CouplingRule(couple_source), training=ENDS_PATH),
    OpRecord("ConstantOfShape", free, CouplingRule(couple_source), fold=True, training=_ends_path(0)),
    OpRecord("Range", free, CouplingRule(couple_source), training=_ends_path(0, 1, 2)),
    OpRecord("EyeLike", free, CouplingRule(couple_source), training=ENDS_PATH),
    *_each("DepthToSpace SpaceToDepth", cost=free, coupling=CouplingRule(couple_depth_space), zero=FIRST_ZERO),
    # quantization (QDQ)
    OpRecord("DequantizeLinear", ONE, CouplingRule(couple_dequantize)),
    OpRecord("QuantizeLinear", ONE, CouplingRule(couple_quantize)),
    # known without a coupling rule
    *_each("GatherElements GatherND", cost=free, training=_differentiable(1)),
    *_each("ScatterND ScatterElements", cost=free, training=_differentiable(1)),
    OpRecord("Trilu", free, training=_differentiable(1)),
    OpRecord("NonZero", free, training=_ends_path(0)),
    OpRecord("CastLike", free, training=_rewritten(cast_like)),
    OpRecord("TopK", training=_differentiable(1)),
    OpRecord("OneHot", training=_ends_path(0, 1, 2)),
)

install(RECORDS)
