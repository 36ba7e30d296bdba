"""Torch kernels for ONNX's shape and data-movement ops, constants and Resize (records in `torch_kernels.py`).

Shape arithmetic (Shape, Gather on a shape, Concat of sizes, ...) produces small int64 tensors that
stay on the CPU wherever the model runs: reading them (`ints`) then never waits for a GPU. Where a
kernel meets tensors on two devices (a CPU index into a GPU weight), `same_device` moves the CPU one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from onnx import TensorProto

DTYPES = {
    TensorProto.FLOAT: torch.float32, TensorProto.DOUBLE: torch.float64, TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16, TensorProto.INT64: torch.int64, TensorProto.INT32: torch.int32,
    TensorProto.INT16: torch.int16, TensorProto.INT8: torch.int8, TensorProto.UINT8: torch.uint8,
    TensorProto.UINT16: torch.uint16, TensorProto.UINT32: torch.uint32, TensorProto.UINT64: torch.uint64,
    TensorProto.BOOL: torch.bool,
}


def ints(value) -> list[int]:
    """A shape-like tensor (or array) as Python ints."""
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    return [int(v) for v in np.asarray(value).reshape(-1)]


def same_device(a, b):
    """`a` and `b` on one device: a CPU tensor moves to the other's (GPU) device."""
    if a.device != b.device:
        if a.device.type == "cpu":
            a = a.to(b.device)
        else:
            b = b.to(a.device)
    return a, b


def _cpu_long(values) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.int64)


def shape(n, x):
    """Shape (start/end, opset 15) as a CPU int64 tensor."""
    dims = list(x[0].shape)
    start, end = n.attr("start", 0), n.attr("end")
    return _cpu_long(dims[start:end] if end is not None else dims[start:])


def size(n, x):
    """Element count as a CPU int64 scalar."""
    return torch.tensor(x[0].numel(), dtype=torch.int64)


def reshape(n, x):
    """Reshape; 0 copies the input's dim (unless allowzero), -1 is inferred."""
    v, target = x[0], ints(x[1])
    if not n.attr("allowzero", 0):
        target = [v.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return v.reshape(target)


def flatten(n, x):
    """Flatten to 2-D at `axis` (default 1)."""
    v = x[0]
    axis = n.attr("axis", 1) % (v.dim() + 1) if v.dim() else 0
    return v.reshape(math.prod(v.shape[:axis]), -1)


def _axes_input(n, x, attr_before: int = 13):
    if n.opset < attr_before:
        return n.attr("axes")
    return ints(x[1]) if len(x) > 1 and x[1] is not None else None


def squeeze(n, x):
    """Squeeze the given axes (all size-1 axes if none)."""
    v, axes = x[0], _axes_input(n, x)
    if axes is None:
        return v.squeeze()
    keep = [d for i, d in enumerate(v.shape) if i not in {a % v.dim() for a in axes}]
    return v.reshape(keep)


def unsqueeze(n, x):
    """Unsqueeze: axes index the output."""
    v, axes = x[0], _axes_input(n, x)
    rank = v.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        v = v.unsqueeze(axis)
    return v


def transpose(n, x):
    """Transpose by `perm` (default: reversed axes)."""
    v = x[0]
    perm = n.attr("perm")
    return v.permute(*(perm if perm is not None else reversed(range(v.dim()))))


def concat(n, x):
    """Concat along `axis` (inputs on the first non-CPU device)."""
    values = [v for v in x if v is not None]
    device = next((v.device for v in values if v.device.type != "cpu"), values[0].device)
    return torch.cat([v.to(device) for v in values], n.attr("axis"))


def split(n, x):
    """Split by the `split` sizes (attribute before opset 13, input after), or into equal parts
    (num_outputs from opset 18: ceil-sized parts, the last smaller)."""
    v, axis = x[0], n.attr("axis", 0)
    sizes = n.attr("split") if n.opset < 13 else (ints(x[1]) if len(x) > 1 and x[1] is not None else None)
    if sizes is None:
        parts = n.attr("num_outputs", n.outputs)
        dim = v.shape[axis]
        chunk = math.ceil(dim / parts)
        sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
    return tuple(torch.split(v, list(sizes), axis))


def slice_(n, x):
    """Slice (inputs from opset 10, attributes before); negative steps by an index list."""
    v = x[0]
    if n.opset < 10:
        starts, ends, axes, steps = n.attr("starts"), n.attr("ends"), n.attr("axes"), None
    else:
        starts, ends = ints(x[1]), ints(x[2])
        axes = ints(x[3]) if len(x) > 3 and x[3] is not None else None
        steps = ints(x[4]) if len(x) > 4 and x[4] is not None else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = steps or [1] * len(starts)
    index = [slice(None)] * v.dim()
    reverse = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis %= v.dim()
        if step > 0:
            index[axis] = slice(start, end, step)
        else:
            reverse.append((axis, range(*slice(start, end, step).indices(v.shape[axis]))))
    out = v[tuple(index)]
    for axis, picked in reverse:
        out = out.index_select(axis, torch.tensor(list(picked), dtype=torch.int64, device=v.device))
    return out


def _wrap(index: torch.Tensor, dim: int) -> torch.Tensor:
    """Negative indices counted from the end (ONNX allows them; torch's gathers do not)."""
    return torch.where(index < 0, index + dim, index)


def gather(n, x):
    """Gather along `axis`; an embedding lookup (axis 0 of a 2-D float table) is F.embedding."""
    data, index = x[0], x[1].to(torch.int64)
    data, index = same_device(data, index) if data.device.type == "cpu" else (data, index.to(data.device))
    axis = n.attr("axis", 0) % data.dim()
    index = _wrap(index, data.shape[axis])
    if axis == 0 and data.dim() == 2 and data.is_floating_point():
        return F.embedding(index, data)
    picked = data.index_select(axis, index.reshape(-1))
    return picked.reshape((*data.shape[:axis], *index.shape, *data.shape[axis + 1:]))


def gather_elements(n, x):
    """GatherElements: torch.gather along `axis`."""
    data, index = x[0], x[1].to(torch.int64).to(x[0].device)
    axis = n.attr("axis", 0) % data.dim()
    return torch.gather(data, axis, _wrap(index, data.shape[axis]))


def refuse_gather_nd(n) -> str | None:
    return "GatherND with batch_dims > 0 is not implemented" if n.attr("batch_dims", 0) else None


def gather_nd(n, x):
    """GatherND (batch_dims 0): the last index axis addresses the leading data axes."""
    data, index = x[0], x[1].to(torch.int64).to(x[0].device)
    depth = index.shape[-1]
    parts = tuple(_wrap(index[..., i], data.shape[i]) for i in range(depth))
    return data[parts]


def scatter_elements(n, x):
    """ScatterElements (and the old Scatter): updates placed along `axis`; reduction none/add/mul/max/min."""
    data, index, updates = x[0], x[1].to(torch.int64).to(x[0].device), x[2]
    axis = n.attr("axis", 0) % data.dim()
    index = _wrap(index, data.shape[axis])
    reduction = n.attr("reduction", "none")
    if reduction == "none":
        return data.scatter(axis, index, updates)
    name = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return data.scatter_reduce(axis, index, updates, name, include_self=True)


def scatter_nd(n, x):
    """ScatterND: updates placed at the index tuples (reduction none or add, mul, max, min)."""
    data, index, updates = x[0], x[1].to(torch.int64).to(x[0].device), x[2]
    depth = index.shape[-1]
    parts = tuple(_wrap(index[..., i], data.shape[i]) for i in range(depth))
    reduction = n.attr("reduction", "none")
    if reduction in ("none", "add"):
        return data.index_put(parts, updates, accumulate=reduction == "add")
    out = data.clone()
    current = out[parts]
    combined = {"mul": torch.mul, "max": torch.maximum, "min": torch.minimum}[reduction](current, updates)
    return out.index_put(parts, combined)


def expand(n, x):
    """Expand: numpy broadcasting of the input against the shape."""
    v = x[0]
    target = torch.broadcast_shapes(tuple(v.shape), tuple(ints(x[1])))
    return v.expand(target)


def tile(n, x):
    """Tile by the repeats input."""
    return x[0].repeat(ints(x[1]))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def refuse_pad(n) -> str | None:
    mode = n.attr("mode", "constant")
    return None if mode in _PAD_MODES else f"Pad mode {mode!r}"


def pad(n, x):
    """Pad (pads as input from opset 11, attribute before; axes input from 18); negative pads crop.
    reflect/edge/wrap pad trailing axes only, as torch does (leading axes must not be padded)."""
    v = x[0]
    if n.opset < 11:
        pads, value = list(n.attr("pads")), n.attr("value", 0.0)
        axes = None
    else:
        pads = ints(x[1])
        value = float(x[2].reshape(-1)[0]) if len(x) > 2 and x[2] is not None and x[2].numel() else 0.0
        axes = ints(x[3]) if len(x) > 3 and x[3] is not None else None
    rank = v.dim()
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    count = len(axes)
    begin, end = [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        begin[axis], end[axis] = pads[i], pads[count + i]
    first = next((i for i in range(rank) if begin[i] or end[i]), rank)
    spec = []
    for axis in reversed(range(first, rank)):
        spec += [begin[axis], end[axis]]
    if not spec:
        return v
    mode = _PAD_MODES[n.attr("mode", "constant")]
    if mode == "constant":
        return F.pad(v, spec, value=value)
    padded_axes = rank - first
    if padded_axes > 3 or rank - padded_axes < 1:
        raise ValueError(f"Pad mode {n.attr('mode')!r} over {padded_axes} leading axes is not implemented")
    return F.pad(v, spec, mode=mode)


def refuse_constant(n) -> str | None:
    if n.attr("sparse_value") is not None or n.attr("value_string") is not None or n.attr("value_strings") is not None:
        return "sparse or string Constants"
    return None


def constant(n, x):
    """Constant from whichever value attribute it has."""
    for key, dtype in (("value", None), ("value_float", torch.float32), ("value_floats", torch.float32),
                       ("value_int", torch.int64), ("value_ints", torch.int64)):
        found = n.attr(key)
        if found is not None:
            return torch.from_numpy(np.array(found)) if dtype is None else torch.tensor(found, dtype=dtype)
    raise ValueError("Constant without a value")


def constant_of_shape(n, x):
    """A tensor of the input's shape filled with `value` (default float 0)."""
    value = n.attr("value")
    fill = torch.from_numpy(np.array(value)).reshape(-1) if value is not None else torch.zeros(1)
    return fill.expand(ints(x[0])).clone() if ints(x[0]) else fill.reshape(()).expand(()).clone()


def range_(n, x):
    """Range(start, limit, delta)."""
    start, limit, delta = (v.reshape(()).item() for v in x[:3])
    return torch.arange(start, limit, delta, dtype=x[0].dtype, device=x[0].device)


def eye_like(n, x):
    """Ones on diagonal `k`, of the input's shape, in `dtype` (default the input's)."""
    rows, cols = x[0].shape
    dtype = DTYPES[n.attr("dtype")] if n.attr("dtype") is not None else x[0].dtype
    k = n.attr("k", 0)
    return torch.ones(rows, cols, device=x[0].device).triu(k).tril(k).to(dtype)


def trilu(n, x):
    """Upper (triu) or lower (tril) triangle with offset k."""
    k = ints(x[1])[0] if len(x) > 1 and x[1] is not None else 0
    return torch.triu(x[0], k) if n.attr("upper", 1) else torch.tril(x[0], k)


def one_hot(n, x):
    """OneHot(indices, depth, [off, on]) along `axis` (default -1); negative indices count from the end."""
    depth = int(x[1].reshape(-1)[0])
    off, on = x[2][0], x[2][1]
    index = x[0].to(torch.int64)
    index = torch.where(index < 0, index + depth, index)
    hot = F.one_hot(index, depth)
    axis = n.attr("axis", -1) % hot.dim()
    hot = hot.movedim(-1, axis)
    return torch.where(hot.bool(), on, off)


def nonzero(n, x):
    """Indices of non-zero elements, shaped [rank, count]."""
    return torch.nonzero(x[0]).t().contiguous()


def depth_space(n, x):
    """DepthToSpace (DCR or CRD) and SpaceToDepth, by reshape and permute as ONNX defines them."""
    v, b = x[0], n.attr("blocksize")
    batch, channels, height, width = v.shape
    if n.op_type == "SpaceToDepth":
        t = v.reshape(batch, channels, height // b, b, width // b, b).permute(0, 3, 5, 1, 2, 4)
        return t.reshape(batch, channels * b * b, height // b, width // b)
    if n.attr("mode", "DCR") == "DCR":
        t = v.reshape(batch, b, b, channels // (b * b), height, width).permute(0, 3, 4, 1, 5, 2)
    else:
        t = v.reshape(batch, channels // (b * b), b, b, height, width).permute(0, 1, 4, 2, 5, 3)
    return t.reshape(batch, channels // (b * b), height * b, width * b)


# ------------------------------------------------------------------ Resize
_TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric")


def refuse_resize(n) -> str | None:
    mode = n.attr("mode", "nearest")
    if mode not in ("nearest", "linear"):
        return f"Resize mode {mode!r} (nearest and linear are implemented)"
    transform = n.attr("coordinate_transformation_mode", "half_pixel" if n.op_type == "Resize" else "asymmetric")
    if transform not in _TRANSFORMS:
        return f"Resize coordinate_transformation_mode {transform!r}"
    if n.attr("keep_aspect_ratio_policy", "stretch") != "stretch" or n.attr("axes") is not None:
        return "Resize with axes or a keep_aspect_ratio_policy"
    if n.attr("antialias", 0) or n.attr("exclude_outside", 0):
        return "Resize with antialias or exclude_outside"
    return None


def _source(n, transform: str, out_index: np.ndarray, scale: float, length_in: int, length_out: int) -> np.ndarray:
    """The input coordinate of each output index (ONNX's coordinate_transformation_mode)."""
    if transform == "asymmetric":
        return out_index / scale
    if transform == "align_corners":
        return out_index * (length_in - 1) / (length_out - 1) if length_out > 1 else np.zeros_like(out_index)
    if transform == "pytorch_half_pixel" and length_out == 1:
        return np.zeros_like(out_index)
    if transform == "half_pixel_symmetric":
        adjust = length_out / (scale * length_in)
        center = length_in / 2 * (1 - adjust)
        return center + (out_index + 0.5) / scale - 0.5
    return (out_index + 0.5) / scale - 0.5


def _nearest(n, coords: np.ndarray, length_in: int) -> np.ndarray:
    rule = n.attr("nearest_mode", "round_prefer_floor" if n.op_type == "Resize" else "floor")
    if rule == "floor":
        picked = np.floor(coords)
    elif rule == "ceil":
        picked = np.ceil(coords)
    elif rule == "round_prefer_ceil":
        picked = np.floor(coords + 0.5)
    else:  # round_prefer_floor
        picked = np.ceil(coords - 0.5)
    return np.clip(picked, 0, length_in - 1).astype(np.int64)


def resize(n, x):
    """Resize/Upsample, nearest or (multi)linear, any ONNX coordinate transformation: the source index
    (and weight) of every output position is computed per axis and applied axis by axis."""
    v = x[0]
    transform = n.attr("coordinate_transformation_mode", "half_pixel" if n.op_type == "Resize" else "asymmetric")
    if n.op_type == "Upsample":
        scales = [float(s) for s in (x[1].reshape(-1).tolist() if len(x) > 1 else n.attr("scales"))]
        sizes = None
    else:
        scales_at = 1 if n.opset < 11 else 2
        scales = x[scales_at].reshape(-1).tolist() if len(x) > scales_at and x[scales_at] is not None \
            and x[scales_at].numel() else None
        sizes = ints(x[3]) if n.opset >= 11 and len(x) > 3 and x[3] is not None and x[3].numel() else None
    if sizes is None:
        sizes = [math.floor(d * s) for d, s in zip(v.shape, scales)]
    if scales is None:
        scales = [o / i for o, i in zip(sizes, v.shape)]
    out = v
    for axis, (length_in, length_out, scale) in enumerate(zip(v.shape, sizes, scales)):
        if length_in == length_out and scale == 1:
            continue
        coords = _source(n, transform, np.arange(length_out, dtype=np.float64), scale, length_in, length_out)
        if n.attr("mode", "nearest") == "nearest":
            index = torch.from_numpy(_nearest(n, coords, length_in)).to(v.device)
            out = out.index_select(axis, index)
            continue
        coords = np.clip(coords, 0, length_in - 1)
        low = np.floor(coords).astype(np.int64)
        high = np.minimum(low + 1, length_in - 1)
        shape = [1] * v.dim()
        shape[axis] = length_out
        weight = torch.from_numpy((coords - low).astype(np.float32)).to(device=v.device, dtype=v.dtype).reshape(shape)
        below = out.index_select(axis, torch.from_numpy(low).to(v.device))
        above = out.index_select(axis, torch.from_numpy(high).to(v.device))
        out = below + (above - below) * weight
    return out
