"""Coupling rules of elementwise ops: activations, arithmetic, comparisons, Where, Clip, PRelu, Dropout.

See `coupling.py` for the vocabulary; each `couple_*` function reads one op through its OpView and
returns a Coupling, or None when the instance is outside what the rule understands (frozen).
"""

from __future__ import annotations

import numpy as np

from ..space import CONSUMER, PRODUCER
from .coupling import (
    IN,
    Coupling,
    ax_in,
    ax_out,
    broadcast_coupling,
    flag,
    identity_coupling,
    param_roles,
    rank,
    zero_all_inputs,
    zero_any,
    zero_first,
    zero_never,
)
from .rule import OpView


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
    param_roles(view, coupling, [1], CONSUMER)
    return coupling


def _binary(zero_rule, param_role: str = PRODUCER):
    def couple(view: OpView) -> Coupling | None:
        coupling = Coupling(zero=zero_rule)
        slots = [i for i, present in enumerate(view.present) if present]
        if not broadcast_coupling(view, slots, coupling):
            return None
        param_roles(view, coupling, slots, param_role)
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
    param_roles(view, coupling, [0], PRODUCER)
    param_roles(view, coupling, [1], CONSUMER)
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
    param_roles(view, coupling, [1], CONSUMER)
    return coupling


def couple_where(view: OpView) -> Coupling | None:
    """Where(cond, a, b) is zero where both branches are."""
    def zero(flags, out_slot=0):
        return flag(flags, 1) is True and flag(flags, 2) is True
    coupling = Coupling(zero=zero)
    if not broadcast_coupling(view, [0, 1, 2], coupling):
        return None
    param_roles(view, coupling, [1, 2], PRODUCER)
    return coupling
