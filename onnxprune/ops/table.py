"""The op table: one row per op family, naming its cost formula and its coupling rule.

Adding support for an op means adding it to a row here (or a new row with its functions) and a test.
"""

from __future__ import annotations

from .cost_rules import (conv_cost, conv_transpose_cost, free, gemm_cost, matmul_cost, per_input_element,
                         per_output_element, window_pool_cost)
from .couple_rules import (couple_add_like, couple_batchnorm, couple_clip, couple_concat, couple_conv,
                           couple_conv_transpose, couple_div, couple_dropout, couple_expand, couple_flatten,
                           couple_gather, couple_gemm, couple_groupnorm, couple_instancenorm, couple_layernorm,
                           couple_matmul, couple_mul, couple_pad, couple_pool, couple_pow, couple_prelu,
                           couple_reduce, couple_reshape, couple_resize, couple_shape_reader, couple_slice,
                           couple_softmax, couple_source, couple_split, couple_squeeze_unsqueeze, couple_tile,
                           couple_transpose, couple_unary_keeps_zero, couple_unary_nonzero, couple_where,
                           rewrite_conv, rewrite_expand, rewrite_gather, rewrite_reshape, rewrite_slice, rewrite_split)
from .coupling import CouplingRule
from .rule import OpRule

ONE = per_output_element(1)

RULES: tuple[OpRule, ...] = (
    OpRule(("Conv",), conv_cost, CouplingRule(couple_conv, rewrite_conv)),
    OpRule(("ConvTranspose",), conv_transpose_cost, CouplingRule(couple_conv_transpose)),
    OpRule(("Gemm",), gemm_cost, CouplingRule(couple_gemm)),
    OpRule(("MatMul",), matmul_cost, CouplingRule(couple_matmul)),
    # f(0) = 0, elementwise
    OpRule(("Relu", "LeakyRelu", "Tanh", "Gelu", "Erf", "Sqrt", "Abs", "Neg", "Elu", "Selu", "Celu",
            "Mish", "HardSwish", "Sin", "Tan", "Softsign", "Sign", "Floor", "Ceil", "Round", "ThresholdedRelu",
            "Asin", "Atan", "Sinh", "Asinh", "Atanh"), ONE, CouplingRule(couple_unary_keeps_zero)),
    OpRule(("Identity", "Cast"), free, CouplingRule(couple_unary_keeps_zero)),
    # f(0) != 0, elementwise
    OpRule(("Sigmoid", "HardSigmoid", "Exp", "Softplus", "Cos", "Log", "Reciprocal", "Cosh", "Acos", "IsNaN",
            "IsInf", "Not"), ONE, CouplingRule(couple_unary_nonzero)),
    OpRule(("Dropout",), free, CouplingRule(couple_dropout)),
    OpRule(("Clip",), ONE, CouplingRule(couple_clip)),
    OpRule(("PRelu",), ONE, CouplingRule(couple_prelu)),
    OpRule(("Add", "Sub", "Max", "Min", "Sum", "Mean"), ONE, CouplingRule(couple_add_like)),
    OpRule(("Mul",), ONE, CouplingRule(couple_mul)),
    OpRule(("Div",), ONE, CouplingRule(couple_div)),
    OpRule(("Pow",), ONE, CouplingRule(couple_pow)),
    OpRule(("Where",), ONE, CouplingRule(couple_where)),
    OpRule(("Mod", "And", "Or", "Xor", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"), ONE),
    OpRule(("BatchNormalization",), per_output_element(2), CouplingRule(couple_batchnorm)),
    OpRule(("InstanceNormalization",), per_output_element(5), CouplingRule(couple_instancenorm)),
    OpRule(("LayerNormalization",), per_output_element(5), CouplingRule(couple_layernorm)),
    OpRule(("GroupNormalization",), per_output_element(5), CouplingRule(couple_groupnorm)),
    OpRule(("Softmax", "LogSoftmax"), per_output_element(3), CouplingRule(couple_softmax)),
    OpRule(("Hardmax",), per_output_element(1), CouplingRule(couple_softmax)),
    OpRule(("MaxPool", "AveragePool", "LpPool"), window_pool_cost, CouplingRule(couple_pool)),
    OpRule(("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"), per_input_element, CouplingRule(couple_pool)),
    OpRule(("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
            "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"), per_input_element, CouplingRule(couple_reduce)),
    OpRule(("ArgMax", "ArgMin"), per_input_element),
    OpRule(("Transpose",), free, CouplingRule(couple_transpose)),
    OpRule(("Flatten",), free, CouplingRule(couple_flatten)),
    OpRule(("Reshape",), free, CouplingRule(couple_reshape, rewrite_reshape)),
    OpRule(("Squeeze", "Unsqueeze"), free, CouplingRule(couple_squeeze_unsqueeze)),
    OpRule(("Concat",), free, CouplingRule(couple_concat)),
    OpRule(("Split",), free, CouplingRule(couple_split, rewrite_split)),
    OpRule(("Slice",), free, CouplingRule(couple_slice, rewrite_slice)),
    OpRule(("Gather",), free, CouplingRule(couple_gather, rewrite_gather)),
    OpRule(("Pad",), free, CouplingRule(couple_pad)),
    OpRule(("Expand",), free, CouplingRule(couple_expand, rewrite_expand)),
    OpRule(("Tile",), free, CouplingRule(couple_tile)),
    OpRule(("Resize", "Upsample"), free, CouplingRule(couple_resize)),
    OpRule(("Shape", "Size"), free, CouplingRule(couple_shape_reader)),
    OpRule(("Constant", "ConstantOfShape", "Range", "EyeLike"), free, CouplingRule(couple_source)),
    OpRule(("GatherElements", "GatherND", "ScatterND", "ScatterElements", "NonZero", "Trilu", "CastLike",
            "DepthToSpace", "SpaceToDepth"), free),
)
