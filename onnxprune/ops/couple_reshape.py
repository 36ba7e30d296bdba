"""Coupling rules of the ops that relayout a tensor: Transpose, Flatten, Reshape, Squeeze, Unsqueeze.

See `coupling.py` for the vocabulary. Reshape is the long one: it maps a split or merged axis digit by
digit (attention heads come from here) and ties axes whose sizes it reads at run time through Shape.
"""

from __future__ import annotations

import itertools

import numpy as np

from .coupling import (
    IN,
    OUT,
    Axis,
    Coupling,
    ax_in,
    ax_out,
    dim,
    normalize_axis,
    rank,
    zero_first,
)
from .rule import STAND_INS, OpView, constant_value
from .shape_consts import (
    flat_pieces,
    read_only_into_shapes,
    rewrite_scaled_element,
    rewrite_shape_elements,
    shape_elements,
    strip_stand_ins,
    trace_elements,
)
from .shape_refine import analysis_types, sees_analysis_types


# ---------------------------------------------------------------------- moving data
def couple_transpose(view: OpView) -> Coupling | None:
    """Transpose: output axis i is input axis perm[i]."""
    r = rank(view, IN, 0)
    if r is None:
        return None
    perm = view.op.attr("perm") or list(reversed(range(r)))
    return Coupling(same=[(ax_in(0, p), ax_out(0, i)) for i, p in enumerate(perm)], zero=zero_first)


def _block_link(coupling: Coupling, outer: Axis, outer_size: int, inner: Axis, block: int) -> None:
    """Index i of `outer` owns indices [i*block, (i+1)*block) of `inner`."""
    coupling.links.append((outer, np.repeat(np.arange(outer_size), block), inner, np.arange(outer_size * block)))


def couple_flatten(view: OpView) -> Coupling | None:
    """Flatten to 2-D: the outermost axis of each side keeps its identity as blocks; inner axes freeze."""
    r = rank(view, IN, 0)
    shape = view.inputs[0].shape if view.inputs[0] is not None else None
    if r is None or shape is None:
        return None
    split = normalize_axis(view.op.attr("axis", 1), r) if r else 0
    coupling = Coupling(zero=zero_first)
    for out_axis, axes in ((0, list(range(split))), (1, list(range(split, r)))):
        if not axes:
            continue
        inner = shape[axes[0] + 1:axes[-1] + 1]
        if len(axes) == 1:
            coupling.same.append((ax_in(0, axes[0]), ax_out(0, out_axis)))
            continue
        if not all(isinstance(d, int) for d in inner) or not isinstance(shape[axes[0]], int):
            for axis in axes:
                coupling.frozen.append((ax_in(0, axis), "Flatten over dimensions that are not static"))
            coupling.frozen.append((ax_out(0, out_axis), "Flatten over dimensions that are not static"))
            continue
        _block_link(coupling, ax_in(0, axes[0]), shape[axes[0]], ax_out(0, out_axis), int(np.prod(inner)))
        for axis in axes[1:]:
            coupling.frozen.append((ax_in(0, axis), "inner axis of a Flatten"))
    return coupling


def _reshape_groups(src: list, dst: list) -> list[tuple[list[int], list[int]]] | None:
    """Split two shapes into runs of axes with equal products (the way a row-major reshape regroups
    them). Symbolic dims must meet the same symbol. None if the shapes cannot be matched."""
    groups, i, j = [], 0, 0
    while i < len(src) or j < len(dst):
        if i < len(src) and j < len(dst) and (isinstance(src[i], str) or isinstance(dst[j], str)):
            if src[i] != dst[j]:
                return None
            groups.append(([i], [j]))
            i, j = i + 1, j + 1
            continue
        gi, gj = [i] if i < len(src) else [], [j] if j < len(dst) else []
        if not gi or not gj:
            rest_src, rest_dst = src[i:], dst[j:]
            if all(d == 1 for d in rest_src) and all(d == 1 for d in rest_dst):
                groups.append((list(range(i, len(src))), list(range(j, len(dst)))))
                break
            return None
        p, q = src[i], dst[j]
        i, j = i + 1, j + 1
        while p != q:
            if p < q:
                if i >= len(src) or not isinstance(src[i], int):
                    return None
                p *= src[i]
                gi.append(i)
                i += 1
            else:
                if j >= len(dst) or not isinstance(dst[j], int):
                    return None
                q *= dst[j]
                gj.append(j)
                j += 1
        groups.append((gi, gj))
    return groups


def _split_link(coupling: Coupling, parts: list[Axis], sizes: list[int], whole: Axis, kind: str) -> int:
    """The whole axis is the row-major product of `parts`. Link one part to it (index i owns the whole's
    indices whose coordinate on that part is i) and freeze the others: linking two would tie every
    index to every other. The innermost part (head_dim) never; among the rest the largest, ties to
    the outermost: attention heads in both [heads, head_dim] and fused [3, heads, head_dim] splits.
    Returns the linked part's position."""
    candidates = range(len(parts) - 1)
    linked = max(candidates, key=lambda p: (sizes[p], -p))
    inner = int(np.prod(sizes[linked + 1:]))
    total = int(np.prod(sizes))
    coupling.links.append((parts[linked], (np.arange(total) // inner) % sizes[linked], whole, np.arange(total)))
    for position, part in enumerate(parts):
        if position != linked:
            where = "inner" if position > linked else "outer"
            coupling.frozen.append((part, f"{where} axis of a Reshape {kind} (another axis owns the indices)"))
    return linked


_SYMBOL = "(one dynamic dimension)"


def _match_lone_symbols(src: list, dst: list) -> tuple[list, list]:
    """If each side has exactly one dynamic dim and the static dims multiply to the same number, the
    two dynamic dims are equal (as with a -1 in the target shape): give them one name."""
    dynamic_src = [i for i, d in enumerate(src) if not isinstance(d, int)]
    dynamic_dst = [i for i, d in enumerate(dst) if not isinstance(d, int)]
    if len(dynamic_src) == 1 and len(dynamic_dst) == 1 and \
            np.prod([d for d in src if isinstance(d, int)]) == np.prod([d for d in dst if isinstance(d, int)]):
        src, dst = list(src), list(dst)
        src[dynamic_src[0]] = dst[dynamic_dst[0]] = _SYMBOL
    return src, dst


def _couple_reshape_symbolic(view: OpView) -> Coupling | None:
    """Reshape with symbolic dims (no prime stand-ins bound): axes regroup by equal products. 1-to-1 axes
    pass through; when one axis splits into several (or several merge into one), the outermost one owns
    blocks of the big axis (attention heads), and the inner ones freeze. A size on a prunable axis must
    be rewritable: a constant, 0 (copy) or -1 (infer) in the shape input."""
    src = view.inputs[0].shape if view.inputs[0] is not None else None
    dst = view.outputs[0].shape if view.outputs[0] is not None else None
    if src is None or dst is None or any(d is None for d in (*src, *dst)):
        return None
    groups = _reshape_groups(*_match_lone_symbols(list(src), list(dst)))
    if groups is None:
        return None
    elements = shape_elements(view.graph, view.graph.inputs_of(view.op)[1], view.types) \
        if view.graph is not None else None
    coupling = Coupling(zero=zero_first)

    def rewritable(out_axis: int) -> bool:
        return elements is not None and len(elements) == len(dst) and elements[out_axis] is not None

    for gi, gj in groups:
        real_i = [a for a in gi if src[a] != 1]
        real_j = [a for a in gj if dst[a] != 1]
        if not real_i or not real_j:
            continue
        if len(real_i) == 1 and len(real_j) == 1:
            coupling.same.append((ax_in(0, real_i[0]), ax_out(0, real_j[0])))
            if not rewritable(real_j[0]):
                coupling.frozen.append((ax_out(0, real_j[0]), "Reshape target size is computed at run time"))
        elif len(real_i) == 1:  # split: one output axis owns its slices of the input axis
            linked = _split_link(coupling, [ax_out(0, a) for a in real_j], [dst[a] for a in real_j],
                                 ax_in(0, real_i[0]), "split")
            if not rewritable(real_j[linked]):
                coupling.frozen.append((ax_out(0, real_j[linked]), "Reshape target size is computed at run time"))
        elif len(real_j) == 1:  # merge: one input axis owns its slices of the output axis
            _split_link(coupling, [ax_in(0, a) for a in real_i], [src[a] for a in real_i], ax_out(0, real_j[0]),
                        "merge")
            if not rewritable(real_j[0]):
                coupling.frozen.append((ax_out(0, real_j[0]), "Reshape target size is computed at run time"))
        else:
            for axis in real_i:
                coupling.frozen.append((ax_in(0, axis), "Reshape regroups several axes at once"))
            for axis in real_j:
                coupling.frozen.append((ax_out(0, axis), "Reshape regroups several axes at once"))
    return coupling


def couple_reshape(view: OpView) -> Coupling | None:
    """Reshape: axes regroup by equal products into runs, and each run is read as mixed-radix digits
    (the common refinement of both sides' sizes: [L, N, 32] -> [L, N*4, 8] has digits N, 4, 8). One
    digit per run carries the family: the largest static digit that is not the innermost (head_dim),
    or the innermost when it is the only one; never a dynamic digit (batch, sequence) and never a digit
    whose axis is only unstacked by constant scalar Gathers or unit Splits (the 3 of a fused q/k/v
    projection). Axes holding that digit are linked (index i owns the indices whose digit is i's);
    the run's other axes freeze. A shrinking output axis needs a rewritable target element: a constant,
    0 or -1, a dimension read at run time by Shape that only feeds targets (tied to the axis it reads),
    or a dynamic product times a constant (batch x heads: the constant is rescaled)."""
    src = view.inputs[0].shape if view.inputs[0] is not None else None
    dst = view.outputs[0].shape if view.outputs[0] is not None else None
    if src is None or dst is None or any(d is None for d in (*src, *dst)):
        return None
    if not all(isinstance(d, int) and d > 0 for d in (*src, *dst)):
        return _couple_reshape_symbolic(view)
    groups = _reshape_groups(list(src), list(dst))
    if groups is None or view.graph is None:
        return None
    shape_value = view.graph.inputs_of(view.op)[1]
    elements = trace_elements(view.graph, shape_value, view.types)
    coupling = Coupling(zero=zero_first)
    for gi, gj in groups:
        real_i = [a for a in gi if src[a] != 1]
        real_j = [a for a in gj if dst[a] != 1]
        if real_i and real_j:
            _couple_run(view, coupling, src, dst, real_i, real_j, elements)
    return coupling


def _digits(src_sizes: list[int], dst_sizes: list[int]):
    """The mixed-radix digits (innermost first) that both sides' axes are made of, and for each axis of
    each side the range of digits it spans; None if the sides interleave (no common refinement)."""
    def boundaries(sizes):
        found, product = [1], 1
        for size in reversed(sizes):
            product *= size
            found.append(product)
        return found
    bounds = sorted(set(boundaries(src_sizes)) | set(boundaries(dst_sizes)))
    if any(high % low for low, high in itertools.pairwise(bounds)):
        return None
    digits = [high // low for low, high in itertools.pairwise(bounds)]

    def spans(sizes):
        found, inner = [], 1
        for size in reversed(sizes):
            found.append(range(bounds.index(inner), bounds.index(inner * size)))
            inner *= size
        return list(reversed(found))
    return digits, spans(src_sizes), spans(dst_sizes)


def _digit_of(size: int, span: range, digits: list[int], digit: int) -> np.ndarray:
    """For every index of an axis spanning `span`, the value of `digit` in it."""
    inner = int(np.prod(digits[span.start:digit]))
    return (np.arange(size) // inner) % digits[digit]


def _couple_run(view: OpView, coupling: Coupling, src, dst, real_i: list[int], real_j: list[int], elements) -> None:
    """Couple one run of axes of equal product (see couple_reshape)."""
    found = _digits([src[a] for a in real_i], [dst[a] for a in real_j])
    if found is None:
        for a in real_i:
            coupling.frozen.append((ax_in(0, a), "Reshape regroups several axes at once"))
        for a in real_j:
            coupling.frozen.append((ax_out(0, a), "Reshape regroups several axes at once"))
        return
    digits, src_spans, dst_spans = found
    if len(real_i) == 1 and len(real_j) == 1:
        coupling.same.append((ax_in(0, real_i[0]), ax_out(0, real_j[0])))
        require_rewritable(view, coupling, real_j[0], elements)
        return
    output = view.graph.outputs_of(view.op)[0]
    stacked = {span.start for a, span in zip(real_j, dst_spans)
               if len(span) == 1 and _is_unstacked(view.graph, output, a, view.types)}
    candidates = [d for d in range(len(digits)) if digits[d] > 1 and d not in stacked
                  and strip_stand_ins(digits[d]) == digits[d]]
    outer = [d for d in candidates if d != 0]
    chosen = max(outer, key=lambda d: (digits[d], d)) if outer else (0 if 0 in candidates else None)
    kind = "split" if len(real_i) == 1 else "merge" if len(real_j) == 1 else "regrouping"
    holders = []
    for side, axes, spans, shape in ((ax_in, real_i, src_spans, src), (ax_out, real_j, dst_spans, dst)):
        for a, span in zip(axes, spans):
            if chosen is not None and chosen in span:
                holders.append((side(0, a), _digit_of(shape[a], span, digits, chosen)))
            elif chosen is None:
                coupling.frozen.append((side(0, a), f"axis of a Reshape {kind} with no static axis to own the indices"))
            else:
                where = "outer" if span.start > chosen else "inner"
                coupling.frozen.append((side(0, a), f"{where} axis of a Reshape {kind} (another axis owns the indices)"))
    if chosen is None:
        return
    (a_axis, a_digit), (b_axis, b_digit) = holders
    first_a = np.zeros(digits[chosen], dtype=np.int64)
    first_b = np.zeros(digits[chosen], dtype=np.int64)
    first_a[a_digit[::-1]] = np.arange(len(a_digit))[::-1]  # the first index holding each digit value
    first_b[b_digit[::-1]] = np.arange(len(b_digit))[::-1]
    coupling.links.append((a_axis, np.concatenate([np.arange(len(a_digit)), first_a[b_digit]]),
                           b_axis, np.concatenate([first_b[a_digit], np.arange(len(b_digit))])))
    require_rewritable(view, coupling, b_axis.axis, elements)


def require_rewritable(view: OpView, coupling: Coupling, out_axis: int, elements, position: int | None = None
                        ) -> None:
    """Freeze output axis `out_axis` unless compact can rewrite its element (at `position`, default the
    same) of the target shape in input 1 (see couple_reshape); tie it to the dimension it reads when it
    reads one."""
    position = out_axis if position is None else position
    size = dim(view, OUT, 0, out_axis)
    element = elements[position] if elements is not None and 0 <= position < len(elements) else None
    target = view.graph.inputs_of(view.op)[1]
    why = f"{view.op.op_type} target size is computed at run time"
    if element is None:
        coupling.frozen.append((ax_out(0, out_axis), why))
    elif element.read is not None and pure_read(view.graph, view.types, element):
        replaceable = not element.dynamic and static_piece(view.graph, target, position, view.types)
        coupling.ties.append((ax_out(0, out_axis), *element.read, replaceable, element.scaled))
    elif (element.dynamic or element.shaped) and (
            not isinstance(size, int) or element.coef >= min(STAND_INS) or strip_stand_ins(size) != element.coef or
            not _one_element_piece(view.graph, target, position, view.types)):
        # computed at run time from dimensions (dynamic, or bound by the user only for the analysis): compact
        # rescales it in place, which needs it as a piece of its own with the static factor it had here
        coupling.frozen.append((ax_out(0, out_axis), why))


def pure_read(graph, types, element) -> bool:
    """True if every Shape op that reads the dimension behind `element` sends it only into Reshape
    targets as a whole element (the Shape rule then leaves that dimension free to shrink)."""
    name, axis = element.read
    found = types.get(name) if types is not None else None
    if found is None or found.rank is None:
        return False
    for op, _ in graph.uses(graph.value(name)):
        if op.op_type != "Shape" or op.domain not in ("", "ai.onnx"):
            continue
        start, end = _shape_range(op, found.rank)
        if start <= axis < end and not read_only_into_shapes(graph, graph.outputs_of(op)[0], axis - start,
                                                             end - start, (name, axis), types):
            return False
    return True


def _shape_range(op, rank: int) -> tuple[int, int]:
    """The dimensions [start, end) a Shape op returns."""
    start, end = op.attr("start", 0), op.attr("end", rank)
    start = normalize_axis(start, rank) if start < 0 else min(start, rank)
    end = normalize_axis(end, rank) if end < 0 else min(end, rank)
    return start, end


def static_piece(graph, shape_value, position: int, types) -> bool:
    """True if the Concat piece holding element `position` of a shape is static throughout (a
    constant can replace it)."""
    pieces = flat_pieces(graph, shape_value)
    offset = 0
    for piece in pieces:
        traced = trace_elements(graph, piece, types)
        if traced is None:
            return False
        if offset <= position < offset + len(traced):
            return all(e is not None and not e.dynamic for e in traced)
        offset += len(traced)
    return False


def _one_element_piece(graph, shape_value, position: int, types) -> bool:
    """True if element `position` of a Concat-built shape is a piece of its own (a rescaled copy can
    replace it)."""
    concat = graph.producer(shape_value)
    if concat is None or concat.op_type != "Concat":
        return False
    offset = 0
    for piece in flat_pieces(graph, shape_value):
        traced = trace_elements(graph, piece, types)
        length = len(traced) if traced is not None else None
        if length is None:
            return False
        if offset == position:
            return length == 1
        offset += length
    return False


def _is_unstacked(graph, value, axis: int, types, depth: int = 0) -> bool:
    """True if axis `axis` of `value` is only ever taken apart into single slices by constant scalar
    Gathers or a Split into unit pieces (after Transpose/Unsqueeze/Squeeze that move it): the stacked
    q, k, v of a fused projection, which are separate tensors, not channels."""
    if depth > 8 or graph.is_output(value) or not graph.uses(value):
        return False
    found = types.get(value.name) if types is not None else None
    rank = found.rank if found is not None else None
    for op, slot in graph.uses(value):
        kind = op.op_type if op.domain in ("", "ai.onnx") else ""
        out = graph.outputs_of(op)[0]
        if slot != 0 or rank is None:
            return False
        if kind == "Gather":
            indices = constant_value(graph, graph.inputs_of(op)[1])
            if indices is None or np.ndim(indices) != 0 or normalize_axis(op.attr("axis", 0), rank) != axis:
                return False
        elif kind == "Split":
            sizes = [types.get(o.name).shape[axis] if o is not None and types.get(o.name) is not None and
                     types.get(o.name).shape else None for o in graph.outputs_of(op)]
            if normalize_axis(op.attr("axis", 0), rank) != axis or any(size != 1 for size in sizes):
                return False
        elif kind == "Transpose":
            perm = op.attr("perm") or list(reversed(range(rank)))
            if not _is_unstacked(graph, out, list(perm).index(axis), types, depth + 1):
                return False
        elif kind in ("Unsqueeze", "Squeeze"):
            axes = op.attr("axes")
            if axes is None and len(graph.inputs_of(op)) > 1:
                axes = constant_value(graph, graph.inputs_of(op)[1])
            if axes is None:
                return False
            axes = [int(x) for x in np.reshape(axes, -1)]
            if kind == "Unsqueeze":
                out_rank = rank + len(axes)
                added = sorted(normalize_axis(x, out_rank) for x in axes)
                kept = [a for a in range(out_rank) if a not in added]
                new = kept[axis]
            else:
                removed = {normalize_axis(x, rank) for x in axes}
                if axis in removed:
                    return False
                new = axis - sum(1 for x in removed if x < axis)
            if not _is_unstacked(graph, out, new, types, depth + 1):
                return False
        else:
            return False
    return True


def rewrite_reshape(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """Write the new sizes of shrunk output axes into the shape input (copy-on-write): static sizes
    (constants, and static dimensions read by Shape) are replaced by the new size, a dynamic product
    times a constant is rescaled at run time, and 0, -1 and dynamic dimensions read from a tied axis
    adapt by themselves."""
    shape_value = graph.inputs_of(op)[1]
    types = analysis_types(graph, view.types)  # decide as the rule did, with the types it saw
    elements = trace_elements(graph, shape_value, types)
    changes, scaled = {}, []
    for key, indices in kept.items():
        if key.side != OUT:
            continue
        element = elements[key.axis] if elements is not None and key.axis < len(elements) else None
        if element is None:
            raise AssertionError(f"{op.label}: the target element of axis {key.axis} cannot be traced to rewrite it")
        if not element.dynamic and element.coef in (0, -1):
            continue
        tied = element.read is not None and pure_read(graph, types, element)
        if tied and (element.dynamic or not static_piece(graph, shape_value, key.axis, types)):
            continue  # read from the tied axis, which shrinks alike (prune-space froze this axis otherwise)
        if not tied and (element.dynamic or element.shaped):  # rescaled at run time: bound dims stay dynamic
            scaled.append((key.axis, strip_stand_ins(len(indices)), element.coef))
        else:
            changes[key.axis] = len(indices)
    rewrite_shape_elements(graph, op, 1, changes, types)
    for position, numerator, denominator in scaled:
        rewrite_scaled_element(graph, op, 1, position, numerator, denominator, types)


def couple_squeeze_unsqueeze(view: OpView) -> Coupling | None:
    """Squeeze/Unsqueeze: the axes that stay keep their identity, in order."""
    src = view.inputs[0].shape if view.inputs[0] is not None else None
    dst = view.outputs[0].shape if view.outputs[0] is not None else None
    if src is None or dst is None:
        return None
    axes = view.op.attr("axes")
    if axes is None and view.has_input(1):
        found = view.constant(1)
        if found is None:
            return None
        axes = [int(a) for a in np.asarray(found).reshape(-1)]
    if view.op.op_type == "Squeeze":
        removed = {a for a, d in enumerate(src) if d == 1} if axes is None else \
            {normalize_axis(a, len(src)) for a in axes}
        kept_in = [a for a in range(len(src)) if a not in removed]
        if len(kept_in) != len(dst):
            return None
        pairs = list(zip(kept_in, range(len(dst))))
    else:
        added = {normalize_axis(a, len(dst)) for a in (axes or [])}
        kept_out = [a for a in range(len(dst)) if a not in added]
        if len(kept_out) != len(src):
            return None
        pairs = list(zip(range(len(src)), kept_out))
    return Coupling(same=[(ax_in(0, i), ax_out(0, o)) for i, o in pairs], zero=zero_first)


@sees_analysis_types
def rewrite_squeeze(graph, op, view: OpView, kept: dict[Axis, np.ndarray]) -> None:
    """A Squeeze without axes removes every size-1 axis: once a channel axis shrinks to one it would go
    too. Name the originally squeezed axes explicitly."""
    if op.op_type != "Squeeze" or op.attr("axes") is not None or (len(view.present) > 1 and view.present[1]):
        return
    axes = [a for a, d in enumerate(view.inputs[0].shape) if d == 1]
    if graph.opset < 13:
        graph.set_attr(op, "axes", axes)
    else:
        graph.set_input(op, 1, graph.add_initializer(graph.fresh_name(f"{op.name or 'squeeze'}_axes"),
                                                     np.array(axes, dtype=np.int64)))
