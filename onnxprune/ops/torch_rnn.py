"""Torch kernels for ONNX's recurrent ops: LSTM, GRU and RNN, step by step as the ONNX operators
define them (gate order, biases, directions, layouts), so autograd differentiates them: the ops
onnxruntime-training has no gradient for train with the torch engine (records in `torch_kernels.py`).
"""

from __future__ import annotations

import torch

_DEFAULTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def refuse_rnn(n) -> str | None:
    activations = n.attr("activations")
    default = _DEFAULTS[n.op_type]
    if activations is not None and list(activations) not in (default, default * 2):
        return f"{n.op_type} with activations {list(activations)} (the defaults {default} are implemented)"
    if n.attr("clip") is not None:
        return f"{n.op_type} with clip"
    if n.attr("input_forget", 0):
        return "LSTM with input_forget=1"
    return None


def _prepare(n, x):
    """(inputs as [seq, batch, features], directions, hidden size, layout)."""
    layout = n.attr("layout", 0)
    v = x[0].transpose(0, 1) if layout else x[0]
    lengths = x[4] if len(x) > 4 else None
    if lengths is not None and bool((lengths.to(torch.int64) != v.shape[0]).any()):
        raise ValueError(f"{n.op_type} with sequence_lens shorter than the sequence is not implemented")
    directions = 2 if n.attr("direction", "forward") == "bidirectional" else 1
    return v, directions, n.attr("hidden_size") or x[2].shape[-1], layout


def _initial(n, x, slot: int, directions: int, batch: int, hidden: int, like: torch.Tensor) -> torch.Tensor:
    """Initial state `slot` as [directions, batch, hidden] (layout 1 gives it batch-major), or zeros."""
    given = x[slot] if len(x) > slot else None
    if given is not None:
        return given.transpose(0, 1) if n.attr("layout", 0) else given
    return like.new_zeros(directions, batch, hidden)


def _order(n, d: int) -> bool:
    """True if direction `d` runs backwards in time."""
    return n.attr("direction", "forward") == "reverse" or d == 1


def _finish(n, outputs: list[list[torch.Tensor]], finals: list[list[torch.Tensor]], layout: int):
    """Y [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]) and the final states."""
    y = torch.stack([torch.stack(steps) for steps in outputs], 1)
    states = [torch.stack(per_dir) for per_dir in zip(*finals)]
    if layout:
        y = y.permute(2, 0, 1, 3)
        states = [s.transpose(0, 1) for s in states]
    return (y, *states)[:max(n.outputs, 1)] if n.outputs > 1 else y


def lstm(n, x):
    """LSTM: gates i, o, f, c in W/R/B; optional peepholes P (i, o, f); initial h and c."""
    v, directions, hidden, layout = _prepare(n, x)
    w, r = x[1], x[2]
    b = x[3] if len(x) > 3 and x[3] is not None else None
    peep = x[7] if len(x) > 7 and x[7] is not None else None
    h0 = _initial(n, x, 5, directions, v.shape[1], hidden, v)
    c0 = _initial(n, x, 6, directions, v.shape[1], hidden, v)
    outputs, finals = [], []
    for d in range(directions):
        projected = v @ w[d].t()
        if b is not None:
            projected = projected + b[d, :4 * hidden] + b[d, 4 * hidden:]
        h, c = h0[d], c0[d]
        steps = [None] * v.shape[0]
        order = range(v.shape[0] - 1, -1, -1) if _order(n, d) else range(v.shape[0])
        for t in order:
            gates = projected[t] + h @ r[d].t()
            i, o, f, g = gates.chunk(4, -1)
            if peep is not None:
                i = i + peep[d, :hidden] * c
                f = f + peep[d, 2 * hidden:] * c
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if peep is not None:
                o = o + peep[d, hidden:2 * hidden] * c
            h = torch.sigmoid(o) * torch.tanh(c)
            steps[t] = h
        outputs.append(steps)
        finals.append([h, c])
    return _finish(n, outputs, finals, layout)


def gru(n, x):
    """GRU: gates z, r, h in W/R/B; linear_before_reset as the model says."""
    v, directions, hidden, layout = _prepare(n, x)
    w, r = x[1], x[2]
    b = x[3] if len(x) > 3 and x[3] is not None else None
    h0 = _initial(n, x, 5, directions, v.shape[1], hidden, v)
    before_reset = n.attr("linear_before_reset", 0)
    outputs, finals = [], []
    for d in range(directions):
        projected = v @ w[d].t()
        wb = b[d, :3 * hidden] if b is not None else None
        rb = b[d, 3 * hidden:] if b is not None else None
        if wb is not None:
            projected = projected + wb
        rz, rr, rh = r[d].chunk(3, 0)
        h = h0[d]
        steps = [None] * v.shape[0]
        order = range(v.shape[0] - 1, -1, -1) if _order(n, d) else range(v.shape[0])
        for t in order:
            xz, xr, xh = projected[t].chunk(3, -1)
            hz, hr = h @ rz.t(), h @ rr.t()
            if rb is not None:
                hz, hr = hz + rb[:hidden], hr + rb[hidden:2 * hidden]
            z, reset = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
            if before_reset:
                hh = h @ rh.t() + (rb[2 * hidden:] if rb is not None else 0)
                candidate = torch.tanh(xh + reset * hh)
            else:
                candidate = torch.tanh(xh + (reset * h) @ rh.t() + (rb[2 * hidden:] if rb is not None else 0))
            h = (1 - z) * candidate + z * h
            steps[t] = h
        outputs.append(steps)
        finals.append([h])
    return _finish(n, outputs, finals, layout)


def rnn(n, x):
    """Simple RNN: H = tanh(X·Wᵀ + H·Rᵀ + Wb + Rb)."""
    v, directions, hidden, layout = _prepare(n, x)
    w, r = x[1], x[2]
    b = x[3] if len(x) > 3 and x[3] is not None else None
    h0 = _initial(n, x, 5, directions, v.shape[1], hidden, v)
    outputs, finals = [], []
    for d in range(directions):
        projected = v @ w[d].t()
        if b is not None:
            projected = projected + b[d, :hidden] + b[d, hidden:]
        h = h0[d]
        steps = [None] * v.shape[0]
        order = range(v.shape[0] - 1, -1, -1) if _order(n, d) else range(v.shape[0])
        for t in order:
            h = torch.tanh(projected[t] + h @ r[d].t())
            steps[t] = h
        outputs.append(steps)
        finals.append([h])
    return _finish(n, outputs, finals, layout)
