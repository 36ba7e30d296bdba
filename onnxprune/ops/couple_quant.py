"""Coupling rules of QuantizeLinear and DequantizeLinear (QDQ models).

See `coupling.py` for the vocabulary. A quantization step keeps a zero slice zero only when its zero
point is 0.
"""

from __future__ import annotations

import numpy as np

from ..space import CONSUMER, PRODUCER
from .coupling import (
    IN,
    Coupling,
    ax_in,
    ax_out,
    flag,
    identity_coupling,
    normalize_axis,
    rank,
    zero_first,
    zero_never,
)
from .rule import OpView


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
