"""Coupling rules of the ops that move elements: Concat, Split, Slice, Gather, Pad, Expand, Tile, Resize,
Shape/Size readers, DepthToSpace/SpaceToDepth and constant sources.

See `coupling.py` for the vocabulary; `rewrite_*` functions fix sizes after axes shrank.
"""

from __future__ import annotations

import numpy as np

from ..space import PRODUCER
from .couple_reshape import pure_read, require_rewritable, static_piece
from .coupling import (
    IN,
    OUT,
    Axis,
    Coupling,
    ax_in,
    ax_out,
    broadcast_coupling,
    dim,
    normalize_axis,
    param_roles,
    rank,
    zero_all_carrying,
    zero_first,
    zero_never,
)
from .rule import OpView, constant_value
from .shape_consts import (
    fixed_value,
    read_only_into_chunks,
    read_only_into_shapes,
    replace_input_constant,
    rewrite_scaled_element,
    rewrite_shape_elements,
    strip_stand_ins,
    trace_elements,
)
from .shape_refine import analysis_types, sees_analysis_types


def couple_concat(view: OpView) -> Coupling | None:
    """Concat: along the axis, input j owns the output indices at its offset; other axes pass through."""
    r = rank(view, OUT, 0)
    if r is None:
        return None
    axis = normalize_axis(view.op.attr("axis"), r)
    coupling = Coupling(zero=zero_all_carrying)
    if any(rank(view, IN, slot) != r for slot in range(len(view.inputs))):
        return None
    sizes = [dim(view, IN, slot, axis) for slot in range(len(view.inputs))]
    offset = 0
    for slot, size in enumerate(sizes):
        for a in range(r):
            if a != axis:
                coupling.same.append((ax_in(slot, a), ax_out(0, a)))
        if not all(isinstance(s, int) for s in sizes):  # offsets unknown: only the concat axis freezes
            coupling.frozen.append((ax_in(slot, axis), "Concat of pieces whose sizes are not static"))
            continue
        coupling.links.append((ax_in(slot, axis), np.arange(size), ax_out(0, axis), offset + np.arange(size)))
        offset += size
    if not all(isinstance(s, int) for s in sizes):
        coupling.frozen.append((ax_out(0, axis), "Concat of pieces whose sizes are not static"))
    param_roles(view, coupling, list(range(len(view.inputs))), PRODUCER)
    return coupling


def couple_split(view: OpView) -> Coupling | None:
    """Split: output j takes the input indices at its offset along the axis (sizes are rewritten)."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    axis = normalize_axis(view.op.attr("axis", 0), r)
    coupling = Coupling(zero=zero_first)
    offset = 0
    for slot in range(len(view.outputs)):
        if view.outputs[slot] is None or rank(view, OUT, slot) != r:
            return None
        size = dim(view, OUT, slot, axis)
        if not isinstance(size, int):
            return None
        for a in range(r):
            if a != axis:
                coupling.same.append((ax_in(0, a), ax_out(slot, a)))
        coupling.links.append((ax_out(slot, axis), np.arange(size), ax_in(0, axis), offset + np.arange(size)))
        offset += size
    if offset != dim(view, IN, 0, axis):
        return None
    return coupling


@sees_analysis_types
def rewrite_split(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Write the new output sizes as the split input (or attribute before opset 13)."""
    r = rank(view, IN, 0)
    axis = normalize_axis(op.attr("axis", 0), r)
    sizes = [len(kept[ax_out(s, axis)]) if ax_out(s, axis) in kept else dim(view, OUT, s, axis)
             for s in range(len(view.outputs))]
    if graph.opset < 13:
        graph.set_attr(op, "split", [int(s) for s in sizes])
        return
    if view.has_input(1):
        replace_input_constant(graph, op, 1, np.array(sizes, dtype=np.int64))
    else:
        graph.set_input(op, 1, graph.add_initializer(graph.fresh_name(f"{op.name or 'split'}_sizes"),
                                                     np.array(sizes, dtype=np.int64)))
        graph.set_attr(op, "num_outputs", None)


def _slice_params(view: OpView):
    """(starts, ends, axes, steps) as arrays, or None if any is not constant."""
    if view.graph is not None and view.graph.opset < 10:
        starts, ends = view.op.attr("starts"), view.op.attr("ends")
        axes = view.op.attr("axes") or list(range(len(starts)))
        return np.array(starts), np.array(ends), np.array(axes), np.ones(len(starts), dtype=np.int64)
    starts, ends = view.constant(1), view.constant(2)
    if starts is None or ends is None:
        return None
    axes = view.constant(3) if view.has_input(3) else np.arange(len(starts))
    steps = view.constant(4) if view.has_input(4) else np.ones(len(starts), dtype=np.int64)
    if axes is None or steps is None:
        return None
    return np.asarray(starts).reshape(-1), np.asarray(ends).reshape(-1), np.asarray(axes).reshape(-1), \
        np.asarray(steps).reshape(-1)


def couple_slice(view: OpView) -> Coupling | None:
    """Slice with constant bounds: a sliced axis (step 1) maps output j to input start + j; others pass."""
    r = rank(view, IN, 0)
    if r is None or rank(view, OUT, 0) != r:
        return None
    params = _slice_params(view)
    if params is None:  # bounds computed at run time: only the sliced axes are unknown
        axes = view.constant(3) if view.has_input(3) else None
        if axes is None:
            return None
        sliced = {normalize_axis(int(a), r) for a in np.reshape(axes, -1)}
        coupling = Coupling(zero=zero_first)
        for a in range(r):
            if a in sliced:
                coupling.frozen += [(ax_in(0, a), "Slice bounds are computed at run time"),
                                    (ax_out(0, a), "Slice bounds are computed at run time")]
            else:
                coupling.same.append((ax_in(0, a), ax_out(0, a)))
        return coupling
    starts, ends, axes, steps = params
    sliced = {}
    for start, end, axis, step in zip(starts, ends, axes, steps):
        sliced[normalize_axis(int(axis), r)] = (int(start), int(end), int(step))
    coupling = Coupling(zero=zero_first)
    for a in range(r):
        if a not in sliced:
            coupling.same.append((ax_in(0, a), ax_out(0, a)))
            continue
        size, out_size = dim(view, IN, 0, a), dim(view, OUT, 0, a)
        start, end, step = sliced[a]
        if not isinstance(size, int) or not isinstance(out_size, int) or step != 1:
            coupling.frozen.append((ax_in(0, a), "Slice along this axis is not a static step-1 range"))
            coupling.frozen.append((ax_out(0, a), "Slice along this axis is not a static step-1 range"))
            continue
        first = min(max(start + size if start < 0 else start, 0), size)
        coupling.links.append((ax_out(0, a), np.arange(out_size), ax_in(0, a), first + np.arange(out_size)))
    return coupling


@sees_analysis_types
def rewrite_slice(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Move the bounds of shrunk sliced axes to where the kept indices now sit."""
    r = rank(view, IN, 0)
    params = _slice_params(view)
    if params is None:
        # bounds that no longer evaluate (compact is editing the graph they are computed from) need no
        # change where only axes the Slice passes through shrank; a shrunk sliced axis would need them
        axes = view.constant(3) if view.has_input(3) else None
        sliced = range(r) if axes is None else {normalize_axis(int(a), r) for a in np.reshape(axes, -1)}
        if any(ax_in(0, a) in kept for a in sliced):
            raise RuntimeError(f"compact cannot move the run-time bounds of Slice '{op.name}'")
        return
    starts, ends, axes, steps = params
    new_starts, new_ends = starts.astype(np.int64).copy(), ends.astype(np.int64).copy()
    changed = False
    for i, axis in enumerate(axes):
        a = normalize_axis(int(axis), r)
        if ax_in(0, a) not in kept:
            continue
        size = dim(view, IN, 0, a)
        first = min(max(int(starts[i]) + size if starts[i] < 0 else int(starts[i]), 0), size)
        last = min(max(int(ends[i]) + size if ends[i] < 0 else int(ends[i]), 0), size)
        remaining = kept[ax_in(0, a)]
        new_starts[i] = int(np.searchsorted(remaining, first))
        new_ends[i] = int(np.searchsorted(remaining, last))
        changed = True
    if not changed:
        return
    if graph.opset < 10:
        graph.set_attr(op, "starts", [int(v) for v in new_starts])
        graph.set_attr(op, "ends", [int(v) for v in new_ends])
    else:
        replace_input_constant(graph, op, 1, new_starts.astype(view.constant(1).dtype))
        replace_input_constant(graph, op, 2, new_ends.astype(view.constant(2).dtype))


def couple_gather(view: OpView) -> Coupling | None:
    """Gather: data axes other than `axis` pass through; the gathered axis maps through constant 1-D
    indices, and freezes under run-time indices (an embedding's vocabulary axis)."""
    r, idx_rank = rank(view, IN, 0), rank(view, IN, 1)
    if r is None or idx_rank is None:
        return None
    axis = normalize_axis(view.op.attr("axis", 0), r)
    coupling = Coupling(zero=zero_first)
    for a in range(axis):
        coupling.same.append((ax_in(0, a), ax_out(0, a)))
    for a in range(axis + 1, r):
        coupling.same.append((ax_in(0, a), ax_out(0, a + idx_rank - 1)))
    indices = view.constant(1)
    size = dim(view, IN, 0, axis)
    if indices is not None and idx_rank == 1 and isinstance(size, int):
        indices = np.where(indices < 0, indices + size, indices).astype(np.int64)
        coupling.links.append((ax_out(0, axis), np.arange(len(indices)), ax_in(0, axis), indices))
    else:
        coupling.frozen.append((ax_in(0, axis), "gathered by run-time or scalar indices"))
    param_roles(view, coupling, [0], PRODUCER)
    return coupling


@sees_analysis_types
def rewrite_gather(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Renumber constant indices into the shrunk data axis (and drop pruned positions)."""
    r = rank(view, IN, 0)
    axis = normalize_axis(op.attr("axis", 0), r)
    indices = view.constant(1)
    gathered_out = indices is not None and np.ndim(indices) == 1 and ax_out(0, axis) in kept
    if ax_in(0, axis) not in kept and not gathered_out:
        return  # only axes passing through shrank (a scalar index removes the gathered axis from the output)
    size = dim(view, IN, 0, axis)
    positions = np.arange(len(indices)) if ax_out(0, axis) not in kept else kept[ax_out(0, axis)]
    source = np.where(indices < 0, indices + size, indices)[positions]
    remaining = kept.get(ax_in(0, axis), np.arange(size))
    new = np.searchsorted(remaining, source)
    replace_input_constant(graph, op, 1, new.astype(indices.dtype))


def couple_pad(view: OpView) -> Coupling | None:
    """Pad: unpadded axes pass through; a zero constant (or reflect/edge) padding keeps zeros."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    pads = view.op.attr("pads") if view.graph is not None and view.graph.opset < 11 else view.constant(1)
    if pads is None:
        return None
    pads = np.asarray(pads).reshape(-1)
    axes = list(range(r))
    if view.has_input(3):
        found = view.constant(3)
        if found is None:
            return None
        axes = [normalize_axis(int(a), r) for a in np.asarray(found).reshape(-1)]
    padded = {a for i, a in enumerate(axes) if pads[i] != 0 or pads[i + len(axes)] != 0}
    mode = view.op.attr("mode", "constant")
    value = view.constant(2) if view.has_input(2) else 0.0
    keeps_zero = mode != "constant" or (value is not None and float(np.asarray(value).reshape(-1)[0]) == 0.0)
    coupling = Coupling(zero=zero_first if keeps_zero else zero_never)
    for a in range(r):
        if a in padded:
            coupling.frozen.append((ax_in(0, a), "Pad pads along this axis"))
        else:
            coupling.same.append((ax_in(0, a), ax_out(0, a)))
    return coupling


def couple_expand(view: OpView) -> Coupling | None:
    """Expand: axes that keep their size pass through, broadcast ones couple to nothing. The target
    element of a kept axis must stay right when it shrinks: 1 (keep), a static size (rewritten), or a
    dimension read at run time from the axis it sizes (tied, as for Reshape; torch writes its expand
    target through Where(shape == -1, 1, shape))."""
    coupling = Coupling(zero=zero_first)
    if not broadcast_coupling(view, [0], coupling):
        return None
    elements = trace_elements(view.graph, view.graph.inputs_of(view.op)[1], view.types) \
        if view.graph is not None else None
    out_rank = rank(view, OUT, 0)
    for _, out_axis in [(a, b) for a, b in coupling.same]:
        position = out_axis.axis - (out_rank - len(elements)) if elements is not None else -1
        element = elements[position] if elements is not None and position >= 0 else None
        if element is not None and not element.dynamic and element.coef in (1, -1) and element.read is None:
            continue  # keeps the input's size, whatever it becomes
        require_rewritable(view, coupling, out_axis.axis, elements, position)
    return coupling


def rewrite_expand(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Write the new sizes of shrunk axes into the target shape where they are static; 1 and dimensions
    read from a tied axis adapt by themselves."""
    target = graph.inputs_of(op)[1]
    types = analysis_types(graph, view.types)  # decide as the rule did, with the types it saw
    elements = trace_elements(graph, target, types)
    out_rank = rank(view, OUT, 0)
    changes, scaled = {}, []
    producer = graph.producer(target)
    writable = producer is None or producer.op_type in ("Concat", "Where") or constant_value(graph, target) is not None
    for o in range(out_rank):
        position = o - (out_rank - len(elements))
        if ax_out(0, o) not in kept or position < 0:
            continue
        element = elements[position]
        if element is None:
            raise AssertionError(f"{op.label}: the target element of axis {o} cannot be traced to rewrite it")
        if element.read is None and not element.dynamic and element.coef in (1, -1):
            continue
        tied = element.read is not None and pure_read(graph, types, element)
        if tied and (element.dynamic or not static_piece(graph, target, position, types) or not writable):
            continue  # the dimension read at run time shrinks with the family: it adapts by itself
        if not tied and (element.dynamic or element.shaped):
            scaled.append((position, strip_stand_ins(len(kept[ax_out(0, o)])), element.coef))
        else:
            changes[position] = len(kept[ax_out(0, o)])
    if changes and not writable:
        raise AssertionError(f"{op.label}: a static target size sits behind {producer.op_type}")
    rewrite_shape_elements(graph, op, 1, changes, types)
    for position, numerator, denominator in scaled:
        rewrite_scaled_element(graph, op, 1, position, numerator, denominator, types)


def couple_tile(view: OpView) -> Coupling | None:
    """Tile: axes repeated once pass through; repeated axes freeze."""
    r = rank(view, IN, 0)
    repeats = view.constant(1)
    if r is None or repeats is None:
        return None
    coupling = Coupling(zero=zero_first)
    for a, times in enumerate(np.asarray(repeats).reshape(-1)):
        if times == 1:
            coupling.same.append((ax_in(0, a), ax_out(0, a)))
        else:
            coupling.frozen.append((ax_in(0, a), "Tile repeats this axis"))
    return coupling


def couple_resize(view: OpView) -> Coupling | None:
    """Resize/Upsample over space: axes whose constant scale is exactly 1 (batch, channels) pass through;
    explicit output sizes, a region of interest or unknown scales freeze."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    coupling = Coupling(zero=zero_first)
    if view.op.attr("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        return coupling.freeze_all(view, "Resize crops a region of every axis (tf_crop_and_resize)")
    scale_slot = 1 if view.op.op_type == "Upsample" else 2
    scales = view.constant(scale_slot) if view.has_input(scale_slot) else None
    if view.op.op_type == "Resize" and view.graph is not None and view.graph.opset < 11:
        scales = view.constant(1)
    if view.op.op_type == "Upsample" and view.op.attr("scales") is not None:
        scales = np.asarray(view.op.attr("scales"))
    for a in range(r):
        if scales is not None and len(np.reshape(scales, -1)) == r and float(np.reshape(scales, -1)[a]) == 1.0:
            coupling.same.append((ax_in(0, a), ax_out(0, a)))
        else:
            coupling.frozen.append((ax_in(0, a), f"{view.op.op_type} scales this axis (or its scale is not constant)"))
            coupling.frozen.append((ax_out(0, a), f"{view.op.op_type} scales this axis (or its scale is not constant)"))
    return coupling


def couple_shape_reader(view: OpView) -> Coupling | None:
    """Shape/Size read dimensions: the dimensions whose values are used must keep their size. For
    Shape, elements picked out by constant Slice/Gather (through Cast) are the only ones used."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    start, end = 0, r
    used = set(range(r))
    if view.op.op_type == "Shape":
        start = normalize_axis(view.op.attr("start", 0), r)
        end = view.op.attr("end", r)
        end = normalize_axis(end, r) if end < 0 else min(end, r)
        if view.graph is not None:
            output = view.graph.outputs_of(view.op)[0]
            used = {start + i for i in _used_elements(view.graph, output, end - start)}
    coupling = Coupling(zero=zero_never)
    output = view.graph.outputs_of(view.op)[0] if view.graph is not None else None
    for a in range(r):
        read = (view.graph.inputs_of(view.op)[0].name, a) if view.graph is not None else None
        if start <= a < end and a in used and not (
                view.op.op_type == "Shape" and (
                    read_only_into_shapes(view.graph, output, a - start, end - start, read, view.types)
                    or (start == 0 and read_only_into_chunks(view.graph, output, a, read, r)))):
            coupling.frozen.append((ax_in(0, a), f"{view.op.op_type} reads this dimension"))
        else:  # not read, or read only into Reshape targets, whose rule ties it to the axis it sizes
            coupling.unconstrained.append(ax_in(0, a))
    return coupling


def _used_elements(graph, value, length: int) -> set[int]:
    """Positions of a 1-D shape vector that its readers use: constant Slices and Gathers (possibly
    after Cast/Identity) use what they select; any other reader uses everything."""
    everything = set(range(length))
    if value is None or graph.is_output(value) or graph.captures_of_value(value):
        return everything
    used: set[int] = set()
    for consumer, slot in graph.uses(value):
        kind = consumer.op_type if consumer.domain in ("", "ai.onnx") else ""
        if kind in ("Cast", "Identity"):
            used |= _used_elements(graph, graph.outputs_of(consumer)[0], length)
        elif kind == "Slice" and slot == 0 and graph.opset >= 10:
            inputs = graph.inputs_of(consumer)
            found = [fixed_value(graph, inputs[i]) if i < len(inputs) and inputs[i] is not None else None
                     for i in (1, 2, 3, 4)]
            starts, ends, axes, steps = found
            if starts is None or ends is None or (axes is not None and list(np.reshape(axes, -1)) != [0]) or \
                    (steps is not None and list(np.reshape(steps, -1)) != [1]):
                return everything
            first, last = int(np.reshape(starts, -1)[0]), int(np.reshape(ends, -1)[0])
            first = min(max(first + length if first < 0 else first, 0), length)
            last = min(max(last + length if last < 0 else last, 0), length)
            used |= set(range(first, last))
        elif kind == "Gather" and slot == 0 and consumer.attr("axis", 0) == 0:
            indices = constant_value(graph, graph.inputs_of(consumer)[1])
            if indices is None:
                return everything
            used |= {int(i) % length for i in np.reshape(indices, -1)}
        else:
            return everything
    return used


def couple_depth_space(view: OpView) -> Coupling | None:
    """DepthToSpace/SpaceToDepth move channels into space and back: the batch passes, the rest freezes."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    coupling = Coupling(same=[(ax_in(0, 0), ax_out(0, 0))], zero=zero_first)
    for a in range(1, r):
        coupling.frozen += [(ax_in(0, a), f"{view.op.op_type} mixes channels and space"),
                            (ax_out(0, a), f"{view.op.op_type} mixes channels and space")]
    return coupling


def couple_source(view: OpView) -> Coupling | None:
    """Ops that make tensors from attributes or shapes (Constant, ConstantOfShape, Range, ...): a
    Constant's tensor is a parameter like an initializer; computed shapes freeze."""
    coupling = Coupling(zero=zero_never)
    for slot in range(len(view.outputs)):
        for a in range(rank(view, OUT, slot) or 0):
            if view.op.op_type == "Constant":  # a parameter: its consumers' rules govern its axes
                coupling.unconstrained.append(ax_out(slot, a))
            else:
                coupling.frozen.append((ax_out(slot, a), f"{view.op.op_type} output shape is computed"))
    return coupling
