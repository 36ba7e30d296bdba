"""`compact`: apply a Selection, emitting the smaller graph that computes what the masked one does
(DESIGN §7). Also `masked_graph`, the reference every test compares against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxprune.errors import UserError
from onnxprune.ir import Graph, TensorType
from onnxprune.ops import OpView, rule_for
from onnxprune.ops.coupling import ax_in, ax_out
from onnxprune.ops.rule import constant_value
from onnxprune.passmanager import PassResult, TransformPass
from onnxprune.space import PruningSpace, Selection

from .cleanup import remove_dead_ops, remove_unused_values
from .prune_space import PruneSpaceAnalysis
from .shapes import ShapesAnalysis


def _materialize(graph: Graph, names) -> None:
    """Parameters made by Constant ops become initializers, so they can be sliced like any other."""
    for name in names:
        value = graph.get_value(name)
        if value is None or value.tensor is not None:
            continue
        producer = graph.producer(value)
        array = constant_value(graph, value)
        if producer is None or array is None:
            continue
        graph.remove_op(producer, remove_outputs=False)
        graph.make_initializer(value, np.asarray(array))


def _index(axis: int, indices: np.ndarray) -> tuple:
    return (slice(None),) * axis + (indices,)


def masked_graph(graph: Graph, space: PruningSpace, selection: Selection) -> Graph:
    """A copy of `graph` with every producer slice of the selected groups set to zero."""
    masked = graph.copy()
    zeroed: dict[str, list[tuple[int, np.ndarray]]] = {}
    for family_id, groups in selection.pruned.items():
        if not groups:
            continue
        for member in space.family(family_id).producers:
            zeroed.setdefault(member.value, []).append((member.axis, member.indices(groups)))
    _materialize(masked, zeroed)
    for name, slices in zeroed.items():
        array = np.array(masked.initializer(name), copy=True)
        for axis, indices in slices:
            array[_index(axis, indices)] = 0
        masked.set_initializer(name, array)
    return masked


@dataclass(frozen=True)
class CompactReport:
    """What compact removed."""

    groups: int
    parameters_before: int
    parameters_after: int


def compact_graph(graph: Graph, space: PruningSpace, selection: Selection, types: dict[str, TensorType]) -> CompactReport:
    """Remove the selected groups from `graph` in place: rewrite ops whose attributes or constants
    state sizes, slice every member parameter, forget the stale shapes, drop what became dead."""
    selection.check(space)
    removed = selection.removed(space)
    before = sum(v.tensor.size for v in graph.initializers)
    if not removed:
        return CompactReport(0, before, before)
    kept = {key: np.setdiff1d(np.arange(space.axis_size(*key)), idx) for key, idx in removed.items()}
    views = []
    for op in graph.topological_order():
        rule = rule_for(op)
        if rule is None or rule.coupling is None or rule.coupling.rewrite is None:
            continue
        shrinking = {}
        for side, values in ((ax_in, graph.inputs_of(op)), (ax_out, graph.outputs_of(op))):
            for slot, value in enumerate(values):
                if value is None:
                    continue
                for (name, axis), indices in kept.items():
                    if name == value.name:
                        shrinking[side(slot, axis)] = indices
        if shrinking:
            views.append((rule.coupling.rewrite, op, OpView.of(graph, op, types), shrinking))
    for rewrite, op, view, shrinking in views:  # every view was taken before any change
        rewrite(graph, op, view, shrinking)
    parameters = {name for name, _ in removed if graph.value(name).tensor is not None or
                  constant_value(graph, graph.value(name)) is not None}
    _materialize(graph, parameters)
    for name in parameters:
        array = graph.initializer(name)
        for (value, axis), indices in kept.items():
            if value == name:
                array = np.take(array, indices, axis=axis)
        graph.set_initializer(name, np.ascontiguousarray(array))
    for name in {name for name, _ in removed} - parameters:
        value = graph.value(name)
        if value.info is not None and not graph.is_input(value) and not graph.is_output(value):
            graph.drop_value_info(value)
    remove_dead_ops(graph)
    remove_unused_values(graph, graph.names_used_outside())
    after = sum(v.tensor.size for v in graph.initializers)
    return CompactReport(selection.group_count, before, after)


def read_selection(path: str | Path, space: PruningSpace) -> Selection:
    """Load a selection JSON file for this model."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such selection file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a JSON selection ({exc})") from None
    try:
        return Selection.from_json(data, space)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class CompactOptions:
    """Options of `compact`."""

    selection: str = ""  # a selection JSON file; empty: the selection made by an earlier `select`


class Compact(TransformPass):
    """Remove the selected channel/head groups: slice weights, rewrite size constants and attributes.

    Keeps the masked original (selected groups zeroed) for a later `verify`."""

    name = "compact"
    Options = CompactOptions

    def run(self, graph: Graph, am) -> PassResult:
        space = am.get(PruneSpaceAnalysis)
        if self.options.selection:
            selection = read_selection(self.options.selection, space)
        elif "selection" in am.state:
            selection = am.state["selection"]
        else:
            raise UserError("compact needs a selection: run `select` before it, or give compact{selection=FILE}")
        am.state["selection"] = selection
        am.state["reference"] = masked_graph(graph, space, selection)
        am.state["compact"] = compact_graph(graph, space, selection, am.get(ShapesAnalysis))
        return PassResult.changed() if selection.group_count else PassResult.unchanged()
