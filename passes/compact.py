"""`compact`: apply a Selection, emitting the smaller graph that computes what the masked one does
(DESIGN §7). Also `masked_graph`, the reference every test compares against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from onnxprune.errors import UserError
from onnxprune.facts import Compaction
from onnxprune.files import input_file
from onnxprune.ir import Graph, TensorType
from onnxprune.ir.tensor import STORAGE_DTYPES, Tensor
from onnxprune.ops import OpView, rule_for
from onnxprune.ops.coupling import ax_in, ax_out
from onnxprune.ops.rule import constant_value
from onnxprune.passmanager import PassResult, TransformPass
from onnxprune.space import ErasingSpace, PruningSpace, Selection

from .cleanup import live_nodes, remove_dead_ops, remove_unused_values
from .erase_space import EraseSpaceAnalysis
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


def _storage_of(graph: Graph, name: str) -> Tensor:
    """The initializer's tensor, refused (fail closed) where its bytes cannot be sliced or zeroed as they
    are (packed 4-bit weights, strings): converting them would change the weight's type."""
    tensor = graph.value(name).tensor
    if tensor.data_type not in STORAGE_DTYPES:
        raise UserError(f"cannot slice or zero weight {name!r}: its element type "
                        f"{onnx.helper.tensor_dtype_to_string(tensor.data_type)} is packed; freeze that family")
    return tensor


def zeroed(tensor: Tensor, slices: list[tuple[int, np.ndarray]]) -> Tensor:
    """`tensor` with the given (axis, indices) slices set to zero bits (+0.0 in every float type), of the
    same element type; computed when it is read or written (`Tensor.deferred`), one tensor at a time."""
    def compute() -> np.ndarray:
        array = np.array(tensor.storage, copy=True)
        for axis, indices in slices:
            array[_index(axis, indices)] = 0
        return array

    return Tensor.deferred(tensor, tensor.shape, compute)


def sliced(tensor: Tensor, takes: list[tuple[int, np.ndarray]]) -> Tensor:
    """`tensor` keeping only the given (axis, indices), of the same element type; taken when it is read
    or written (`Tensor.deferred`), so no sliced copy of the model is held from compact to save."""
    shape = list(tensor.shape)
    for axis, indices in takes:
        shape[axis] = len(indices)

    def compute() -> np.ndarray:
        array = tensor.storage
        for axis, indices in takes:
            array = np.take(array, indices, axis=axis)
        return array

    return Tensor.deferred(tensor, tuple(shape), compute)


def masked_graph(graph: Graph, space: PruningSpace, selection: Selection, erasing: ErasingSpace | None = None
                 ) -> Graph:
    """A copy of `graph` with every producer slice of the selected groups, and every parameter of the
    erased regions' groups, set to zero."""
    masked = graph.copy()
    zeroing: dict[str, list[tuple[int, np.ndarray]]] = {}
    for region in selection.erased:
        for name in erasing.regions[region].group:
            shape = graph.value(name).tensor.shape
            zeroing.setdefault(name, []).append((0, np.arange(shape[0]) if shape else np.zeros(0, np.int64)))
    for family_id, groups in selection.pruned.items():
        if not groups:
            continue
        for member in space.family(family_id).producers:
            zeroing.setdefault(member.value, []).append((member.axis, member.indices(groups)))
    _materialize(masked, zeroing)
    for name, slices in zeroing.items():
        masked.set_initializer(name, zeroed(_storage_of(masked, name), slices))
    return masked


@dataclass(frozen=True)
class CompactReport:
    """What compact removed."""

    groups: int
    parameters_before: int
    parameters_after: int


def erase_regions(graph: Graph, space: PruningSpace, selection: Selection, erasing: ErasingSpace) -> None:
    """Replace each erased region's merge by its remaining input(s) (an Identity or a smaller Sum that keeps
    the merge's output name, which `cleanup` folds) and delete what became dead."""
    selection.check_regions(erasing)
    clashing = selection.clashes(space, erasing)
    if clashing:
        family_id, value = next(iter(clashing.items()))
        raise UserError(f"the selection prunes family {family_id} ({space.family(family_id).name}), which reaches "
                        f"into an erased region ({value}); erase the region or prune the family, not both")
    merges: dict = {}
    for region in (erasing.regions[r] for r in selection.erased):
        ((merge, _),) = graph.uses(graph.value(region.exit))  # a region's exit feeds only its merge
        merges.setdefault(merge, set()).add(region.exit)
    # Only what erasing made dead goes: dead code that was there before may hold a pruned family's
    # producers, which compaction slices next.
    live = live_nodes(graph)
    dead_before = {op for op in graph.ops() if op not in live}
    for op, gone in merges.items():
        keep = [v for v in graph.inputs_of(op) if v is not None and v.name not in gone]
        (output,) = graph.outputs_of(op)
        graph.remove_op(op, remove_outputs=False)
        graph.add_op("Identity" if len(keep) == 1 else op.op_type, keep, [output], name=op.name)
    remove_dead_ops(graph, among={op for op in graph.ops() if op not in dead_before})
    remove_unused_values(graph, graph.names_used_outside())


def compact_graph(graph: Graph, space: PruningSpace, selection: Selection, types: dict[str, TensorType],
                  erasing: ErasingSpace | None = None) -> CompactReport:
    """Remove the selected groups from `graph` in place: erase the selected regions, rewrite ops whose
    attributes or constants state sizes, slice every member parameter, forget the stale shapes, drop
    what became dead."""
    selection.check(space)
    before = sum(v.tensor.size for v in graph.initializers)
    if selection.erased:
        erase_regions(graph, space, selection, erasing)
    removed = selection.removed(space)
    if not removed:
        return CompactReport(selection.group_count, before, sum(v.tensor.size for v in graph.initializers))
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
    # a list in the space's order, not a set: Constant-op weights become initializers in this order,
    # and the written bytes must not depend on the hash seed
    parameters = [name for name in dict.fromkeys(name for name, _ in removed)
                  if graph.value(name).tensor is not None or constant_value(graph, graph.value(name)) is not None]
    _materialize(graph, parameters)
    for name in parameters:
        takes = [(axis, indices) for (value, axis), indices in kept.items() if value == name]
        graph.set_initializer(name, sliced(_storage_of(graph, name), takes))
    for name in {name for name, _ in removed} - set(parameters):
        value = graph.value(name)
        if value.info is not None and not graph.is_input(value) and not graph.is_output(value):
            graph.drop_value_info(value)
    remove_dead_ops(graph)
    remove_unused_values(graph, graph.names_used_outside())
    after = sum(v.tensor.size for v in graph.initializers)
    return CompactReport(selection.group_count, before, after)


def read_selection(path: str | Path, space: PruningSpace, erasing: ErasingSpace | None = None) -> Selection:
    """Load a selection JSON file for this model."""
    try:
        data = json.loads(input_file(path, "selection file").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a JSON selection ({exc})") from None
    except RecursionError:
        raise UserError(f"{path}: not a JSON selection (nested too deeply)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return Selection.from_json(data, space, erasing)
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
    provides = (Compaction,)

    def requires(self) -> tuple[type, ...]:
        return () if self.options.selection else (Selection,)

    def run(self, graph: Graph, am) -> PassResult:
        space = am.get(PruneSpaceAnalysis)
        erasing = am.get(EraseSpaceAnalysis)
        if self.options.selection:
            selection = read_selection(self.options.selection, space, erasing)
        else:
            selection = am.fact(Selection)
        reference = masked_graph(graph, space, selection, erasing)
        am.provide(Compaction(selection, reference, compact_graph(graph, space, selection, am.get(ShapesAnalysis),
                                                                    erasing)))
        return PassResult.changed() if selection.group_count or selection.erased else PassResult.unchanged()
