"""Torch kernels for ONNX's layer ops: normalisations, pools and quantization (the records are in
`torch_kernels.py`). Like `torch_math.py`, each follows the ONNX operator's definition and calls the
torch function a torch model would (F.batch_norm, F.max_pool2d, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .torch_math import padded, window


# ------------------------------------------------------------------ normalisations
def refuse_batch_norm(n) -> str | None:
    if n.attr("spatial", 1) != 1:
        return "BatchNormalization spatial=0 (opset < 9) is not implemented"
    return None


def batch_norm(n, x):
    """BatchNormalization. Inference: the running statistics. training_mode=1: batch statistics, and
    outputs 1 and 2 are the updated running mean and variance, momentum·running + (1 - momentum)·batch,
    with the batch variance over N·spatial elements (biased), as onnxruntime computes them."""
    v, scale, bias, mean, var = x[:5]
    eps = n.attr("epsilon", 1e-5)
    if not n.attr("training_mode", 0):
        return F.batch_norm(v, mean, var, scale, bias, False, 0.0, eps)
    batch_mean = torch.zeros_like(mean)
    batch_var = torch.ones_like(var)
    # torch's fused kernel writes the batch mean and unbiased variance into these (momentum 1)
    out = F.batch_norm(v, batch_mean, batch_var, scale, bias, True, 1.0, eps)
    if n.outputs < 3:
        return out
    count = v.numel() // v.shape[1]
    momentum = n.attr("momentum", 0.9)
    with torch.no_grad():
        biased = batch_var * ((count - 1) / count)
        return out, mean * momentum + batch_mean * (1 - momentum), var * momentum + biased * (1 - momentum)


def layer_norm(n, x):
    """LayerNormalization over the axes from `axis` on; Mean and InvStdDev outputs when wanted."""
    v, scale = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    axis = n.attr("axis", -1) % v.dim()
    eps = n.attr("epsilon", 1e-5)
    shape = tuple(v.shape[axis:])
    wants_stats = n.outputs > 1 and any(n.wanted[1:])
    if not wants_stats and tuple(scale.shape) == shape and (bias is None or tuple(bias.shape) == shape):
        return F.layer_norm(v, shape, scale, bias, eps)
    dims = list(range(axis, v.dim()))
    mean = v.mean(dims, keepdim=True)
    centered = v - mean
    inv_std = torch.rsqrt((centered * centered).mean(dims, keepdim=True) + eps)
    out = centered * inv_std * scale
    if bias is not None:
        out = out + bias
    return (out, mean, inv_std)[:n.outputs] if n.outputs > 1 else out


def instance_norm(n, x):
    """InstanceNormalization: per sample and channel over the spatial axes."""
    return F.instance_norm(x[0], weight=x[1], bias=x[2], eps=n.attr("epsilon", 1e-5))


def group_norm(n, x):
    """GroupNormalization: scale and bias per group before opset 21, per channel from it on."""
    v, scale, bias = x[0], x[1], x[2]
    groups = n.attr("num_groups")
    if n.opset < 21:
        per = v.shape[1] // groups
        scale, bias = scale.repeat_interleave(per), bias.repeat_interleave(per)
    return F.group_norm(v, groups, scale, bias, n.attr("epsilon", 1e-5))


def lp_norm(n, x):
    """LpNormalization: x / ||x||_p along `axis` (p 1 or 2), without an epsilon, as ONNX defines it."""
    v = x[0]
    p, axis = n.attr("p", 2), n.attr("axis", -1)
    norm = v.abs().sum(axis, keepdim=True) if p == 1 else (v * v).sum(axis, keepdim=True).sqrt()
    return v / norm


# ------------------------------------------------------------------ pools
def refuse_pool(n) -> str | None:
    kernel = n.attr("kernel_shape", [])
    if len(kernel) not in (1, 2, 3):
        return f"{len(kernel)}-D pooling"
    if n.op_type == "MaxPool" and n.wanted[1:2] == (True,):
        return "MaxPool's Indices output is not implemented"
    if n.op_type == "MaxPool" and n.attr("storage_order", 0):
        return "MaxPool storage_order=1"
    if n.op_type == "AveragePool" and n.attr("dilations") is not None and any(d != 1 for d in n.attr("dilations")):
        return "dilated AveragePool"
    return None


_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def max_pool(n, x):
    """MaxPool (padding counts as -inf; torch takes at most half the kernel as padding, more is padded here)."""
    v = x[0]
    kernel = list(n.attr("kernel_shape"))
    strides, dilations, pads = window(n, v, kernel)
    rank = len(kernel)
    fits = pads[:rank] == pads[rank:] and all(p <= k // 2 for p, k in zip(pads[:rank], kernel))
    if fits:
        padding = pads[:rank]
    else:
        v, padding = padded(v, pads, value=-math.inf)
        if any(padding):  # symmetric but wider than torch allows
            spec = []
            for p in reversed(padding):
                spec += [p, p]
            v, padding = F.pad(v, spec, value=-math.inf), [0] * rank
    return _MAX_POOL[rank](v, kernel, strides, padding, dilations, ceil_mode=bool(n.attr("ceil_mode", 0)))


def average_pool(n, x):
    """AveragePool; count_include_pad as the model says (asymmetric pads: zero-padded, which counts them)."""
    v = x[0]
    kernel = list(n.attr("kernel_shape"))
    strides, _, pads = window(n, v, kernel)
    rank = len(kernel)
    include = bool(n.attr("count_include_pad", 0))
    fits = pads[:rank] == pads[rank:] and all(p <= k // 2 for p, k in zip(pads[:rank], kernel))
    if fits:
        return _AVG_POOL[rank](v, kernel, strides, pads[:rank], bool(n.attr("ceil_mode", 0)), include)
    if not include:  # zero padding would count; divide by the window's real element count instead
        ones = torch.ones_like(v[:1, :1])
        total = _AVG_POOL[rank](padded(v, pads)[0], kernel, strides, 0, bool(n.attr("ceil_mode", 0)), True)
        count = _AVG_POOL[rank](padded(ones, pads)[0], kernel, strides, 0, bool(n.attr("ceil_mode", 0)), True)
        return total / count
    return _AVG_POOL[rank](padded(v, pads)[0], kernel, strides, 0, bool(n.attr("ceil_mode", 0)), True)


def global_pool(n, x):
    """GlobalAveragePool / GlobalMaxPool over every spatial axis, keeping them as size 1."""
    v = x[0]
    dims = list(range(2, v.dim()))
    return v.mean(dims, keepdim=True) if n.op_type == "GlobalAveragePool" else v.amax(dims, keepdim=True)


# ------------------------------------------------------------------ quantization
def _per_axis(n, v, param):
    """A scale or zero point shaped to broadcast along `axis` of `v` (scalars as they are)."""
    if param.dim() == 0 or param.numel() == 1:
        return param.reshape(())
    axis = n.attr("axis", 1) % v.dim()
    shape = [1] * v.dim()
    shape[axis] = -1
    return param.reshape(shape)


def dequantize(n, x):
    """(x - zero_point) · scale, per tensor or per `axis`."""
    v, scale = x[0], x[1].to(x[0].device)
    zero = x[2].to(v.device) if len(x) > 2 and x[2] is not None else None
    out = v.to(torch.float32) if zero is None else v.to(torch.float32) - _per_axis(n, v, zero).to(torch.float32)
    return (out * _per_axis(n, v, scale)).to(scale.dtype)


_RANGE = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int16: (-32768, 32767), torch.uint16: (0, 65535)}


def quantize(n, x):
    """saturate(round(x / scale) + zero_point) in the zero point's type (uint8 without one)."""
    v, scale = x[0], x[1].to(x[0].device)
    zero = x[2].to(v.device) if len(x) > 2 and x[2] is not None else torch.zeros((), dtype=torch.uint8)
    low, high = _RANGE[zero.dtype]
    out = torch.round(v / _per_axis(n, v, scale)) + _per_axis(n, v, zero).to(v.dtype)
    return torch.clamp(out, low, high).to(zero.dtype)
