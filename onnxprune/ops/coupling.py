"""How an op couples the axes of its tensors: the vocabulary that op rules speak (DESIGN §5).

A rule looks at one op (with its input and output types) and returns a `Coupling`:

- `same`: pairs of axes that are one index space (index i of one is index i of the other);
- `links`: index-level ties between two axes of different sizes (index a[j] of one axis vanishes
  together with index b[j] of the other): Concat offsets, Flatten blocks, head splits, Slice/Gather maps;
- `sinks`: axes that the op contracts or reduces away, as lists of alternatives: removing an index
  there is exact only if the slice of one of the listed axes is zero (MatMul: either operand's);
- `frozen`: axes that must not shrink, with the reason (the rule cannot rewrite the op for it);
- `unconstrained`: axes the op touches but does not care about (dimensions a Shape op does not read).
- `ties`: an axis of the op that is one index space with an axis of a value elsewhere in the graph,
  named (value, axis): a Reshape whose target reads that dimension through Shape at run time; the
  flags say whether compact could instead write the axis's new size as a constant there, and whether
  the dimension is multiplied by a constant first (then the two axes are one family, not one index space).
  Every other axis of the op's tensors that the rule leaves unmentioned is frozen: fail closed;
- `roles`: for input axes that may hold parameters, whether the axis is a `producer` (zeroing its
  slice makes the output slice zero; it belongs to the group) or a `consumer` (only sliced);
- `zero`: whether an output's coupled slice is zero, given which inputs' slices are zero;
- `nonfinite`: whether it may turn inf/NaN (log or 1/x of a zero slice): such a slice poisons everything
  downstream, since 0 * inf is NaN even where a rule would make the output zero.

An op without a rule, or whose rule returns None, freezes every axis it touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from .rule import OpView

IN, OUT = "in", "out"


class Axis(NamedTuple):
    """Axis `axis` of input (`IN`) or output (`OUT`) number `slot` of the op. (A named tuple, not a
    dataclass: analyses hash millions of these and tuple hashing is native.)"""

    side: str
    slot: int
    axis: int


def ax_in(slot: int, axis: int) -> Axis:
    """Axis of an input."""
    return Axis(IN, slot, axis)


def ax_out(slot: int, axis: int) -> Axis:
    """Axis of an output."""
    return Axis(OUT, slot, axis)


#: Flag for an input slot the op does not have (omitted optional input).
ABSENT = "absent"

ZeroFlags = list  # per input slot: True (slice zero), False (not zero), None (does not carry it), ABSENT
ZeroRule = Callable[[ZeroFlags, int], bool]


def flag(flags: ZeroFlags, slot: int) -> object:
    """The flag of input `slot` (ABSENT past the last given input)."""
    return flags[slot] if slot < len(flags) else ABSENT


def zero_any(flags: ZeroFlags, out_slot: int = 0) -> bool:
    """Zero if any input carrying the axis is zero (Mul, MatMul batch axes)."""
    return any(f is True for f in flags)


def zero_all_carrying(flags: ZeroFlags, out_slot: int = 0) -> bool:
    """Zero if every input that carries the axis is zero, and at least one does (movement ops, Concat)."""
    carrying = [f for f in flags if f is True or f is False]
    return bool(carrying) and all(carrying)


def zero_all_inputs(flags: ZeroFlags, out_slot: int = 0) -> bool:
    """Zero only if every given input carries the axis and is zero (Add, Sub, Max, Min): an input that
    broadcasts along the axis adds something that does not vanish."""
    given = [f for f in flags if f is not ABSENT]
    return bool(given) and all(f is True for f in given)


def zero_first(flags: ZeroFlags, out_slot: int = 0) -> bool:
    """Zero if the first input is (unary ops with f(0) = 0; extra inputs are parameters or bounds)."""
    return flags[0] is True


def zero_never(flags: ZeroFlags, out_slot: int = 0) -> bool:
    """Never zero (Sigmoid, Exp, Softmax: f(0) != 0)."""
    return False


@dataclass
class Coupling:
    """What one op says about its axes (see the module docstring)."""

    same: list[tuple[Axis, Axis]] = field(default_factory=list)
    links: list[tuple[Axis, np.ndarray, Axis, np.ndarray]] = field(default_factory=list)
    sinks: list[list[Axis]] = field(default_factory=list)
    frozen: list[tuple[Axis, str]] = field(default_factory=list)
    unconstrained: list[Axis] = field(default_factory=list)
    ties: list[tuple[Axis, str, int, bool, bool]] = field(default_factory=list)  # axis, value, axis, replaceable, scaled
    roles: dict[Axis, str] = field(default_factory=dict)  # parameter axis -> "producer" | "consumer"
    zero: ZeroRule = zero_never
    nonfinite: ZeroRule = lambda flags, out_slot=0: False  # noqa: E731 (finite unless a rule says so)

    def mentioned(self) -> set[Axis]:
        """Every axis the coupling says something about."""
        found = {a for pair in self.same for a in pair} | {a for a, _, b, _ in self.links for a in (a, b)}
        found |= {a for alternatives in self.sinks for a in alternatives} | {a for a, _ in self.frozen}
        return found | set(self.unconstrained)

    def freeze_all(self, view: OpView, reason: str) -> Coupling:
        """Freeze every axis of every tensor of the op."""
        for side, types in ((IN, view.inputs), (OUT, view.outputs)):
            for slot, t in enumerate(types):
                for axis in range(t.rank if t is not None and t.rank is not None else 0):
                    self.frozen.append((Axis(side, slot, axis), reason))
        return self


@dataclass(frozen=True)
class CouplingRule:
    """The coupling knowledge for one op family.

    `couple(view)` returns the Coupling (None: this op instance is not understood, freeze it).
    `rewrite(graph, op, kept)` updates the op's attributes and constant inputs after the axes in
    `kept` (Axis -> sorted kept indices, only for axes that shrank) lost indices; it returns nothing
    and may add ops/values (it must not edit values other ops share).
    """

    couple: Callable[[OpView], "Coupling | None"]
    rewrite: Callable | None = None


# ---------------------------------------------------------------------- shared helpers
def rank(view: OpView, side: str, slot: int) -> int | None:
    """Rank of an input or output, if known."""
    types = view.inputs if side == IN else view.outputs
    t = types[slot] if slot < len(types) else None
    return None if t is None else t.rank


def dim(view: OpView, side: str, slot: int, axis: int):
    """A dimension (int, symbolic str, or None)."""
    types = view.inputs if side == IN else view.outputs
    t = types[slot]
    return None if t is None or t.shape is None else t.shape[axis]


def normalize_axis(axis: int, rank_: int) -> int:
    """Turn a negative axis into a non-negative one."""
    return axis + rank_ if axis < 0 else axis


def broadcast_coupling(view: OpView, data_slots: list[int], coupling: Coupling) -> bool:
    """Couple the output axes of an elementwise op with the input axes they come from, following
    numpy broadcasting: a size-1 axis that broadcasts couples to nothing. Returns False if a rank or
    a dimension needed to decide is unknown."""
    out_rank = rank(view, OUT, 0)
    if out_rank is None:
        return False
    for slot in data_slots:
        r = rank(view, IN, slot)
        if r is None:
            return False
        for axis in range(r):
            o = axis + out_rank - r
            d_in, d_out = dim(view, IN, slot, axis), dim(view, OUT, 0, o)
            if d_in == 1 and d_out != 1:
                continue  # broadcast along this axis: no coupling
            if d_in is None or d_out is None or (d_in != d_out and not (isinstance(d_in, str) or isinstance(d_out, str))):
                coupling.frozen.append((ax_out(0, o), "a dimension needed to resolve broadcasting is unknown"))
                coupling.frozen.append((ax_in(slot, axis), "a dimension needed to resolve broadcasting is unknown"))
                continue
            coupling.same.append((ax_in(slot, axis), ax_out(0, o)))
    return True


def identity_coupling(view: OpView, slot: int = 0) -> Coupling | None:
    """Every axis of input `slot` is the same axis of output 0 (shapes equal)."""
    r = rank(view, IN, slot)
    if r is None or rank(view, OUT, 0) != r:
        return None
    return Coupling(same=[(ax_in(slot, a), ax_out(0, a)) for a in range(r)])


def param_roles(view: OpView, coupling: Coupling, slots: list[int], role: str) -> None:
    """Give every coupled axis of the parameter inputs `slots` the role `role`."""
    for slot in slots:
        r = rank(view, IN, slot)
        for axis in range(r or 0):
            coupling.roles.setdefault(ax_in(slot, axis), role)

