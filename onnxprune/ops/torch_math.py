"""Torch kernels for ONNX's arithmetic: elementwise ops, reductions, softmax, matrix products,
convolutions (the records are in `torch_kernels.py`; normalisations, pools and quantization are in
`torch_layers.py`).

Each function follows the ONNX operator's definition, attribute defaults and opset differences
included, and uses the torch function a torch model would call (F.conv2d, F.linear, F.batch_norm, ...)
so autograd and speed are those of torch itself. Shape-like inputs (axes, pads) arrive as tensors and
are read with `ints`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .torch_tensors import DTYPES, ints, same_device

_UNARY = {
    "Relu": torch.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid, "Exp": torch.exp, "Log": torch.log,
    "Sqrt": torch.sqrt, "Abs": torch.abs, "Neg": torch.neg, "Reciprocal": torch.reciprocal, "Erf": torch.erf,
    "Sin": torch.sin, "Cos": torch.cos, "Tan": torch.tan, "Asin": torch.asin, "Acos": torch.acos, "Atan": torch.atan,
    "Sinh": torch.sinh, "Cosh": torch.cosh, "Asinh": torch.asinh, "Acosh": torch.acosh, "Atanh": torch.atanh,
    "Softsign": F.softsign, "Mish": F.mish, "HardSwish": F.hardswish, "Identity": lambda x: x,
    "Sign": torch.sign, "Floor": torch.floor, "Ceil": torch.ceil, "Round": torch.round,  # round: half to even
}


def unary(n, x):
    """Elementwise functions without attributes."""
    return _UNARY[n.op_type](x[0])


def activation(n, x):
    """Elementwise functions with attributes (alpha, beta, gamma, lambd, bias, approximate)."""
    v, op = x[0], n.op_type
    if op == "LeakyRelu":
        return F.leaky_relu(v, n.attr("alpha", 0.01))
    if op == "Elu":
        return F.elu(v, n.attr("alpha", 1.0))
    if op == "Celu":
        return F.celu(v, n.attr("alpha", 1.0))
    if op == "Selu":
        alpha, gamma = n.attr("alpha", 1.67326319217681884765625), n.attr("gamma", 1.05070102214813232421875)
        return gamma * torch.where(v > 0, v, alpha * torch.expm1(torch.clamp(v, max=0)))
    if op == "HardSigmoid":
        return torch.clamp(v * n.attr("alpha", 0.2) + n.attr("beta", 0.5), 0, 1)
    if op == "Softplus":
        return F.softplus(v)
    if op == "ThresholdedRelu":
        return torch.where(v > n.attr("alpha", 1.0), v, torch.zeros_like(v))
    if op == "Shrink":
        lambd, bias = n.attr("lambd", 0.5), n.attr("bias", 0.0)
        return torch.where(v < -lambd, v + bias, torch.where(v > lambd, v - bias, torch.zeros_like(v)))
    return F.gelu(v, approximate=n.attr("approximate", "none"))


def refuse_activation(n) -> str | None:
    if n.op_type == "Gelu" and n.attr("approximate", "none") not in ("none", "tanh"):
        return f"Gelu approximate={n.attr('approximate')!r} is not an ONNX mode"
    return None


def prelu(n, x):
    """PRelu: x where x >= 0, slope·x elsewhere (slope broadcast as in the model)."""
    v, slope = same_device(x[0], x[1])
    return torch.where(v < 0, v * slope, v)


def clip(n, x):
    """Clip between bounds given as inputs (opset >= 11) or attributes (before)."""
    v = x[0]
    if n.opset < 11:
        return torch.clamp(v, n.attr("min", -math.inf), n.attr("max", math.inf))
    low = x[1] if len(x) > 1 else None
    high = x[2] if len(x) > 2 else None
    if low is not None:
        v = torch.maximum(v, low.to(v.device))
    if high is not None:
        v = torch.minimum(v, high.to(v.device))
    return v


def refuse_legacy_broadcast(n) -> str | None:
    if n.attr("broadcast") is not None or n.attr("axis") is not None:
        return "the opset < 7 broadcast/axis attributes are not implemented"
    return None


def binary(n, x):
    """Add, Sub, Mul, Div (integers truncate toward zero), Pow (result in the base's type), Mod."""
    a, b = same_device(x[0], x[1])
    op = n.op_type
    if op == "Add":
        return a + b
    if op == "Sub":
        return a - b
    if op == "Mul":
        return a * b
    if op == "Div":
        return torch.div(a, b, rounding_mode="trunc") if not a.is_floating_point() else a / b
    if op == "Pow":
        return torch.pow(a, b).to(a.dtype)
    if n.attr("fmod", 0):
        return torch.fmod(a, b)
    return torch.remainder(a, b)


def variadic(n, x):
    """Max, Min, Sum, Mean of any number of inputs, with broadcasting."""
    values = [v for v in x if v is not None]
    out = values[0]
    for v in values[1:]:
        out, v = same_device(out, v)
        out = {"Max": torch.maximum, "Min": torch.minimum}.get(n.op_type, torch.add)(out, v)
    return out / len(values) if n.op_type == "Mean" else out


_COMPARE = {"Equal": torch.eq, "Less": torch.lt, "LessOrEqual": torch.le, "Greater": torch.gt,
            "GreaterOrEqual": torch.ge, "And": torch.logical_and, "Or": torch.logical_or, "Xor": torch.logical_xor}


def compare(n, x):
    """Comparisons and logical binary ops (boolean results)."""
    a, b = same_device(x[0], x[1])
    return _COMPARE[n.op_type](a, b)


def logical_unary(n, x):
    """Not, IsNaN, IsInf (detect_positive/detect_negative)."""
    v = x[0]
    if n.op_type == "Not":
        return torch.logical_not(v)
    if n.op_type == "IsNaN":
        return torch.isnan(v)
    positive, negative = n.attr("detect_positive", 1), n.attr("detect_negative", 1)
    if positive and negative:
        return torch.isinf(v)
    if positive:
        return torch.isposinf(v)
    return torch.isneginf(v) if negative else torch.zeros_like(v, dtype=torch.bool)


def where(n, x):
    """Where(condition, a, b) with broadcasting."""
    cond, a = same_device(x[0], x[1])
    a, b = same_device(a, x[2])
    return torch.where(cond.to(a.device), a, b)


def cast(n, x):
    """Cast to the `to` type (CastLike: to the second input's type); float to int truncates, as C does."""
    dtype = x[1].dtype if n.op_type == "CastLike" else DTYPES[n.attr("to")]
    return x[0].to(dtype)


def dropout(n, x):
    """Dropout: the identity unless its training_mode input is true; the mask output is all true then."""
    v = x[0]
    training = len(x) > 2 and x[2] is not None and bool(x[2])
    ratio = float(x[1]) if len(x) > 1 and x[1] is not None else n.attr("ratio", 0.5)
    if not training or ratio == 0:
        return (v, torch.ones_like(v, dtype=torch.bool)) if n.outputs > 1 else v
    keep = torch.rand_like(v) >= ratio
    out = v * keep / (1 - ratio)
    return (out, keep) if n.outputs > 1 else out


# ------------------------------------------------------------------ reductions
def _axes(n, x, attr_before: int) -> list[int] | None:
    """Reduction axes: the `axes` attribute before opset `attr_before`, the second input from it on."""
    if n.opset < attr_before:
        return n.attr("axes")
    return ints(x[1]) if len(x) > 1 and x[1] is not None else None


def reduce(n, x):
    """Reduce* over `axes` (all if none, unless noop_with_empty_axes), keepdims (default 1)."""
    v = x[0]
    axes = _axes(n, x, 13 if n.op_type == "ReduceSum" else 18)
    keep = bool(n.attr("keepdims", 1))
    if not axes:
        if n.attr("noop_with_empty_axes", 0):
            return v
        axes = list(range(v.dim()))
    dims = sorted(a % v.dim() for a in axes) if v.dim() else []
    op = n.op_type
    if op == "ReduceMean":
        return v.mean(dims, keepdim=keep)
    if op == "ReduceSum":
        return v.sum(dims, keepdim=keep)
    if op == "ReduceMax":
        return v.amax(dims, keepdim=keep)
    if op == "ReduceMin":
        return v.amin(dims, keepdim=keep)
    if op == "ReduceL1":
        return v.abs().sum(dims, keepdim=keep)
    if op == "ReduceL2":
        return (v * v).sum(dims, keepdim=keep).sqrt()
    if op == "ReduceSumSquare":
        return (v * v).sum(dims, keepdim=keep)
    if op == "ReduceLogSum":
        return v.sum(dims, keepdim=keep).log()
    if op == "ReduceLogSumExp":
        return torch.logsumexp(v, dims, keepdim=keep)
    for d in reversed(dims):  # ReduceProd: torch reduces one axis at a time
        v = v.prod(d, keepdim=keep)
    return v


def arg_reduce(n, x):
    """ArgMax/ArgMin along `axis` (first index of ties, or the last with select_last_index)."""
    v, axis, keep = x[0], n.attr("axis", 0), bool(n.attr("keepdims", 1))
    fn = torch.argmax if n.op_type == "ArgMax" else torch.argmin
    if n.attr("select_last_index", 0):
        flipped = fn(v.flip(axis), dim=axis, keepdim=keep)
        return v.shape[axis] - 1 - flipped
    return fn(v, dim=axis, keepdim=keep)


def _along(n, v, fn):
    """Apply `fn(v, dim)` on Softmax's axis: opset >= 13 one axis (default -1); before, the input seen
    as 2-D, [prod(shape[:axis]), prod(shape[axis:])] (default axis 1)."""
    if n.opset >= 13:
        return fn(v, n.attr("axis", -1))
    axis = n.attr("axis", 1) % max(v.dim(), 1)
    flat = v.reshape(math.prod(v.shape[:axis]), -1)
    return fn(flat, 1).reshape(v.shape)


def softmax(n, x):
    """Softmax and LogSoftmax."""
    fn = torch.softmax if n.op_type == "Softmax" else torch.log_softmax
    return _along(n, x[0], lambda v, d: fn(v, d))


def hardmax(n, x):
    """1 at the first maximum along the axis, 0 elsewhere."""
    def one_hot(v, d):
        index = v.argmax(d, keepdim=True)
        return torch.zeros_like(v).scatter_(d, index, 1.0)
    return _along(n, x[0], one_hot)


def cumsum(n, x):
    """CumSum along the axis input; exclusive and reverse attributes."""
    v, axis = x[0], ints(x[1])[0]
    if n.attr("reverse", 0):
        v = v.flip(axis)
    out = v.cumsum(axis)
    if n.attr("exclusive", 0):
        out = out - v
    return out.flip(axis) if n.attr("reverse", 0) else out


def topk(n, x):
    """TopK: values and int64 indices of the k largest (or smallest) along `axis`."""
    k = ints(x[1])[0]
    values, indices = torch.topk(x[0], k, dim=n.attr("axis", -1), largest=bool(n.attr("largest", 1)),
                                 sorted=bool(n.attr("sorted", 1)))
    return values, indices


# ------------------------------------------------------------------ matrix products
def matmul(n, x):
    """MatMul with numpy semantics."""
    return torch.matmul(*same_device(x[0], x[1]))


def gemm(n, x):
    """alpha·A'·B' + beta·C; the common exported form (transB, alpha = beta = 1) is F.linear."""
    a, b = x[0], x[1]
    c = x[2] if len(x) > 2 else None
    alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
    if n.attr("transA", 0):
        a = a.t()
    if n.attr("transB", 0) and alpha == 1.0 and (c is None or beta == 1.0):
        return F.linear(a, b, c)
    if n.attr("transB", 0):
        b = b.t()
    out = a @ b
    if alpha != 1.0:
        out = out * alpha
    if c is not None:
        out = out + (c * beta if beta != 1.0 else c)
    return out


def einsum(n, x):
    """Einsum with the model's equation."""
    return torch.einsum(n.attr("equation").replace(" ", ""), *x)


def _pads(n, rank: int) -> list[int]:
    return list(n.attr("pads", [0] * (2 * rank)))


def _same_pads(n, spatial: list[int], kernel: list[int], strides: list[int], dilations: list[int]) -> list[int]:
    """Explicit pads for auto_pad SAME_UPPER/SAME_LOWER (the extra pad goes at the end for UPPER)."""
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin.append(small if n.attr("auto_pad") == "SAME_UPPER" else large)
        end.append(large if n.attr("auto_pad") == "SAME_UPPER" else small)
    return begin + end


def window(n, v, kernel: list[int]):
    """(strides, dilations, pads) of a windowed op on `v`, auto_pad resolved."""
    rank = len(kernel)
    strides = list(n.attr("strides", [1] * rank))
    dilations = list(n.attr("dilations", [1] * rank))
    auto = n.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(n, list(v.shape[2:]), kernel, strides, dilations)
    elif auto == "VALID":
        pads = [0] * (2 * rank)
    else:
        pads = _pads(n, rank)
    return strides, dilations, pads


def padded(v, pads: list[int], value: float = 0.0):
    """`v` padded by ONNX pads ([begin..., end...] over the spatial axes), and the symmetric padding
    left for torch's op to apply (torch pads both sides alike)."""
    rank = len(pads) // 2
    begin, end = pads[:rank], pads[rank:]
    if begin == end:
        return v, begin
    spec = []
    for b, e in zip(reversed(begin), reversed(end)):
        spec += [b, e]
    return F.pad(v, spec, value=value), [0] * rank


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def refuse_conv(n) -> str | None:
    kernel = n.attr("kernel_shape")
    if kernel is not None and len(kernel) not in _CONV:
        return f"{len(kernel)}-D convolution"
    return None


def conv(n, x):
    """Conv (1-3 spatial axes, groups, dilations, strides, explicit or automatic padding)."""
    v, w = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    kernel = list(w.shape[2:])
    strides, dilations, pads = window(n, v, kernel)
    v, padding = padded(v, pads)
    return _CONV[len(kernel)](v, w, bias, strides, padding, dilations, n.attr("group", 1))


def refuse_conv_transpose(n) -> str | None:
    if n.attr("output_shape") is not None:
        return "ConvTranspose with output_shape is not implemented (give pads)"
    if n.attr("auto_pad", "NOTSET") != "NOTSET":
        return f"ConvTranspose auto_pad={n.attr('auto_pad')} is not implemented"
    return refuse_conv(n)


def conv_transpose(n, x):
    """ConvTranspose with explicit pads and output_padding (asymmetric pads: the symmetric part is
    torch's, the rest is cropped)."""
    v, w = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    kernel = list(w.shape[2:])
    rank = len(kernel)
    strides = list(n.attr("strides", [1] * rank))
    dilations = list(n.attr("dilations", [1] * rank))
    pads = _pads(n, rank)
    extra = list(n.attr("output_padding", [0] * rank))
    common = [min(b, e) for b, e in zip(pads[:rank], pads[rank:])]
    out = _CONV_T[rank](v, w, bias, strides, common, extra, n.attr("group", 1), dilations)
    crop = [(b - c, e - c) for b, e, c in zip(pads[:rank], pads[rank:], common)]
    if any(b or e for b, e in crop):
        index = [slice(None), slice(None)] + [slice(b, out.shape[2 + i] - e) for i, (b, e) in enumerate(crop)]
        out = out[tuple(index)]
    return out
