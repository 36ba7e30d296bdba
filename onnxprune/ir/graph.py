"""`Graph`: an ONNX model as a networkx MultiDiGraph of op nodes and value nodes (DESIGN §3).

Edges run value -> op (key: the input slot) and op -> value (key: the output slot); a value used twice
by one op is two edges. A value that a subgraph attribute (If/Loop/Scan body) reads from the outer scope
is an edge value -> op keyed `("capture", name)`, so reachability and dead-code removal see it. The
networkx graph is the single source of truth for connectivity; the lists kept beside it only record the
model's declared orders (graph inputs, outputs, initializers, value_info) so a round trip is lossless.

Every edit goes through a method of `Graph`, which keeps the invariants (unique value names, at most one
producer per value, edges and declarations in sync) and bumps `version`, which the pass manager uses to
tell whether a pass really changed nothing.

Over 500 lines on purpose: the graph API is one concept, every method keeping the same invariants;
split across modules, they would each reach into the others' internals.
"""

from __future__ import annotations

import copy as _copy
import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import onnx
from onnx import AttributeProto, NodeProto, ValueInfoProto, helper

from ..errors import IRError
from .tensor import Tensor

CAPTURE = "capture"


@dataclass(eq=False)
class Value:
    """A named tensor: graph input, initializer, or an op's output.

    `info` is the ValueInfoProto that declares its type where the model declares one (graph inputs and
    outputs, value_info entries); initializers carry `tensor`. Identity, not name, is a Value's hash,
    so renaming never breaks the graph's indexes.
    """

    name: str
    info: ValueInfoProto | None = None
    tensor: Tensor | None = None
    sparse: onnx.SparseTensorProto | None = None

    @property
    def is_initializer(self) -> bool:
        """True for dense initializers (weights, constants stored in the graph)."""
        return self.tensor is not None

    @property
    def dtype(self) -> int | None:
        """ONNX element type, if known."""
        if self.tensor is not None:
            return self.tensor.data_type
        if self.info is not None and self.info.type.HasField("tensor_type"):
            return self.info.type.tensor_type.elem_type or None
        return None

    @property
    def shape(self) -> tuple[int | str | None, ...] | None:
        """Dimensions where known: ints, symbolic names (str), or None for unknown dims."""
        if self.tensor is not None:
            return self.tensor.shape
        if self.info is not None and self.info.type.HasField("tensor_type"):
            return shape_of_type(self.info.type)
        return None

    def __repr__(self) -> str:
        return f"Value({self.name!r})"


@dataclass(eq=False)
class Op:
    """An operator node. Connectivity lives in the graph's edges; use Graph.inputs_of/outputs_of.

    `attributes` holds the AttributeProtos as the model wrote them (use `attr`/`set_attr` for values);
    `extra` holds every other NodeProto field (doc_string, overload, metadata_props, unknown fields)
    untouched. `num_inputs`/`num_outputs` count declared slots, trailing empty optionals included.
    """

    op_type: str
    domain: str = ""
    name: str = ""
    attributes: dict[str, AttributeProto] = field(default_factory=dict)
    extra: NodeProto = field(default_factory=NodeProto)
    num_inputs: int = 0
    num_outputs: int = 0
    order: int = 0

    def attr(self, name: str, default: Any = None) -> Any:
        """The attribute's Python value (ints, floats, strings as str, tensors as numpy)."""
        proto = self.attributes.get(name)
        if proto is None:
            return default
        value = helper.get_attribute_value(proto)
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, list) and value and isinstance(value[0], bytes):
            return [v.decode("utf-8") for v in value]
        if isinstance(value, onnx.TensorProto):
            return onnx.numpy_helper.to_array(value)
        return value

    @property
    def subgraphs(self) -> list[onnx.GraphProto]:
        """GraphProto attributes (If/Loop/Scan bodies), kept opaque."""
        found = []
        for proto in self.attributes.values():
            if proto.type == AttributeProto.GRAPH:
                found.append(proto.g)
            elif proto.type == AttributeProto.GRAPHS:
                found.extend(proto.graphs)
        return found

    @property
    def label(self) -> str:
        """A human-readable name for messages: the op's name if it has one, else its type."""
        return f"{self.op_type} '{self.name}'" if self.name else self.op_type

    def __repr__(self) -> str:
        return f"Op({self.op_type}, {self.name!r})"


def shape_of_type(type_proto: onnx.TypeProto) -> tuple[int | str | None, ...] | None:
    """The shape of a tensor TypeProto: ints, symbolic names, None for unknown; None if rank unknown."""
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(dim.dim_value)
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


class Graph:
    """A whole ONNX model: the op/value graph plus everything else the ModelProto holds.

    `model` is the ModelProto without its graph (IR version, opsets, metadata, functions, training
    info); `graph_proto` is the GraphProto without nodes, values and initializers (name, doc string,
    quantization annotations, metadata). Build one with `onnxprune.load`.
    """

    def __init__(self, model: onnx.ModelProto | None = None, graph_proto: onnx.GraphProto | None = None) -> None:
        self.nx = nx.MultiDiGraph()
        self.model = model if model is not None else onnx.ModelProto()
        self.graph_proto = graph_proto if graph_proto is not None else onnx.GraphProto()
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self._values: dict[str, Value] = {}
        self._initializers: dict[Value, None] = {}  # ordered sets, in the model's declared order
        self._sparse_initializers: dict[Value, None] = {}
        self._value_info: dict[Value, ValueInfoProto] = {}
        self._order = itertools.count()
        self.version = 0
        self.external_data = False  # the model was read from external data; save keeps it that way
        self.source_files: tuple = ()  # the model file and external data files it was read from (mapped)
        self.mapped_files: tuple = ()  # their memory maps (`serde.release_pages` hands their pages back)
        self._output_overrides: dict[int, ValueInfoProto] = {}  # output declarations a Value cannot hold

    # ----------------------------------------------------------------- model-level properties
    @property
    def opset_imports(self) -> dict[str, int]:
        """Domain -> opset version ('' is the default ONNX domain)."""
        return {o.domain: o.version for o in self.model.opset_import}

    @property
    def opset(self) -> int:
        """The default-domain (ai.onnx) opset version."""
        imports = self.opset_imports
        return imports.get("", imports.get("ai.onnx", 0))

    @property
    def ir_version(self) -> int:
        """The model's IR version."""
        return self.model.ir_version

    @property
    def name(self) -> str:
        """The graph's name."""
        return self.graph_proto.name

    # ----------------------------------------------------------------- walking
    def values(self) -> Iterator[Value]:
        """All values, in creation order."""
        return iter(list(self._values.values()))

    def ops(self) -> Iterator[Op]:
        """All ops, in insertion order (see `topological_order` for a valid execution order)."""
        return (n for n in list(self.nx.nodes) if isinstance(n, Op))

    def __len__(self) -> int:
        return sum(1 for _ in self.ops())

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self._values
        return item in self.nx

    def value(self, name: str) -> Value:
        """The value called `name` (KeyError if none)."""
        return self._values[name]

    def get_value(self, name: str) -> Value | None:
        """The value called `name`, or None."""
        return self._values.get(name)

    @property
    def initializers(self) -> list[Value]:
        """Dense initializers, in the model's order."""
        return list(self._initializers)

    def initializer(self, name: str) -> np.ndarray:
        """The array of initializer `name` (read-only)."""
        value = self._values.get(name)
        if value is None or value.tensor is None:
            raise KeyError(f"no initializer named {name!r}")
        return value.tensor.array

    def producer(self, value: Value) -> Op | None:
        """The op that computes `value`, or None for graph inputs and initializers."""
        for op in self.nx.predecessors(value):
            return op
        return None

    def uses(self, value: Value) -> list[tuple[Op, int]]:
        """(op, input slot) for every input slot that reads `value` (subgraph captures excluded)."""
        return [(op, key) for _, op, key in self.nx.out_edges(value, keys=True) if isinstance(key, int)]

    def consumers(self, value: Value) -> list[Op]:
        """Distinct ops that read `value`, subgraph captures included, in no particular order."""
        return list(dict.fromkeys(self.nx.successors(value)))

    def is_output(self, value: Value) -> bool:
        """True if `value` is a graph output."""
        return any(v is value for v in self.outputs)

    def is_input(self, value: Value) -> bool:
        """True if `value` is a graph input."""
        return any(v is value for v in self.inputs)

    def inputs_of(self, op: Op) -> list[Value | None]:
        """The op's input slots in order; None marks an omitted optional input."""
        return list(self._slots(op)[0])

    def outputs_of(self, op: Op) -> list[Value | None]:
        """The op's output slots in order; None marks an omitted optional output."""
        return list(self._slots(op)[1])

    def _slots(self, op: Op) -> tuple[list, list]:
        """(inputs, outputs) of an op, read from the edges once per graph version (analyses ask often)."""
        cache = self.__dict__.setdefault("_slot_cache", {})
        found = cache.get(op)
        if found is not None and found[0] == self.version:
            return found[1], found[2]
        inputs: list[Value | None] = [None] * op.num_inputs
        for value, keys in self.nx.pred[op].items():
            for key in keys:
                if isinstance(key, int):
                    inputs[key] = value
        outputs: list[Value | None] = [None] * op.num_outputs
        for value, keys in self.nx.succ[op].items():
            for key in keys:
                outputs[key] = value
        if len(cache) > 4 * len(self.nx):  # drop entries of removed ops now and then
            cache.clear()
        cache[op] = (self.version, inputs, outputs)
        return inputs, outputs

    def captures_of_value(self, value: Value) -> list[Op]:
        """Ops whose subgraphs read `value` by name."""
        return [op for _, op, key in self.nx.out_edges(value, keys=True) if not isinstance(key, int)]

    def captures_of(self, op: Op) -> list[Value]:
        """Outer-scope values that the op's subgraphs read."""
        return [value for value, keys in self.nx.pred[op].items() for key in keys if not isinstance(key, int)]

    def topological_order(self) -> list[Op]:
        """Ops in an order where every op follows its producers; among ready ops, insertion order wins,
        so an unmodified model keeps its node order. Cached until the graph changes."""
        cached = getattr(self, "_topo_cache", None)
        if cached is not None and cached[0] == self.version:
            return list(cached[1])

        # Kahn's algorithm over ops with a heap on insertion order (networkx's lexicographical sort
        # does the same over value nodes too, at several times the cost on large graphs).
        pred, succ = self.nx.pred, self.nx.succ
        waiting: dict[Op, int] = {}
        ready: list[tuple[int, int, Op]] = []  # (insertion order, tie-break, op)
        tie = itertools.count()
        for node in self.nx:
            if isinstance(node, Op):
                count = sum(1 for value in pred[node] if pred[value])
                if count:
                    waiting[node] = count
                else:
                    ready.append((node.order, next(tie), node))
        heapq.heapify(ready)
        ordered: list[Op] = []
        while ready:
            _, _, op = heapq.heappop(ready)
            ordered.append(op)
            for value in succ[op]:
                for consumer in succ[value]:
                    left = waiting[consumer] - 1
                    if left:
                        waiting[consumer] = left
                    else:
                        del waiting[consumer]
                        heapq.heappush(ready, (consumer.order, next(tie), consumer))
        if not waiting:
            self._topo_cache = (self.version, ordered)
            return list(ordered)
        try:
            cycle = nx.find_cycle(self.nx.subgraph(list(waiting) + [v for op in waiting for v in pred[op]]))
        except nx.NetworkXNoCycle:  # pragma: no cover - Kahn left ops waiting, so a cycle exists
            cycle = []
        names = " -> ".join(n.name if isinstance(n, Value) else n.label for n, _, _ in cycle[:8])
        raise IRError(f"the graph has a cycle: {names}")

    # ----------------------------------------------------------------- building and editing
    def _touch(self) -> None:
        self.version += 1

    def fresh_name(self, base: str) -> str:
        """A value name not used yet, derived from `base`."""
        if base not in self._values:
            return base
        for i in itertools.count(1):
            candidate = f"{base}_{i}"
            if candidate not in self._values:
                return candidate
        raise AssertionError("unreachable")

    def add_value(self, name: str, info: ValueInfoProto | None = None, tensor: Tensor | None = None) -> Value:
        """Create a value; names must be unique."""
        if not name:
            raise IRError("a value needs a non-empty name")
        if name in self._values:
            raise IRError(f"a value named {name!r} already exists")
        if info is not None and info.name != name:
            info = _copy.deepcopy(info)
            info.name = name
        value = Value(name, info=info, tensor=tensor)
        self._values[name] = value
        self.nx.add_node(value)
        if tensor is not None:
            self._initializers[value] = None
        self._touch()
        return value

    def add_initializer(self, name: str, array: np.ndarray | Tensor) -> Value:
        """Create an initializer holding `array`."""
        tensor = array if isinstance(array, Tensor) else Tensor.from_array(array)
        return self.add_value(name, tensor=tensor)

    def make_initializer(self, value: Value | str, array: np.ndarray | Tensor) -> None:
        """Turn a value with no producer (say, after removing the Constant op that made it) into an
        initializer holding `array`."""
        value = self._resolve(value)
        if self.producer(value) is not None or value.tensor is not None or self.is_input(value):
            raise IRError(f"{value.name!r} is produced, an input, or already an initializer")
        value.tensor = array if isinstance(array, Tensor) else Tensor.from_array(array)
        self._initializers[value] = None
        self._touch()

    def drop_value_info(self, value: Value) -> None:
        """Forget an intermediate value's declared type (after its shape changed)."""
        if self.is_input(value) or self.is_output(value):
            raise IRError(f"{value.name!r} is a graph input or output; its declaration is the interface")
        self._value_info.pop(value, None)
        value.info = None
        self._touch()

    def set_initializer(self, value: Value | str, array: np.ndarray | Tensor) -> None:
        """Replace an initializer's contents (shape and type may change)."""
        value = self._resolve(value)
        if value.tensor is None:
            raise IRError(f"{value.name!r} is not an initializer")
        tensor = array if isinstance(array, Tensor) else Tensor.from_array(array, like=value.tensor)
        value.tensor = tensor
        if value.info is not None:  # a declared type (IR < 4 input) must follow the new contents
            _set_tensor_type(value.info, tensor.data_type, tensor.shape)
        self._touch()

    def add_op(self, op_type: str, inputs: Sequence[Value | str | None], outputs: Sequence[Value | str] | int = 1,
               *, domain: str = "", name: str = "", attributes: dict[str, Any] | None = None) -> Op:
        """Add an op reading `inputs` (Values or names; None for an omitted optional input).

        `outputs` are new value names, existing values that have no producer yet, or a count (fresh
        names derived from the op's name or type). Attribute values are Python values or AttributeProtos.
        Everything is checked before the graph changes.
        """
        resolved = [None if item is None else self._resolve(item) for item in inputs]
        if isinstance(outputs, int):
            outputs = [self.fresh_name(f"{name or op_type}_out{i}") for i in range(outputs)]
        targets: list[Value | str | None] = []
        for item in outputs:
            if item is None or item == "":
                targets.append(None)
                continue
            existing = self._resolve(item) if isinstance(item, Value) else self._values.get(item)
            if existing is not None:
                self._check_producible(existing)
                targets.append(existing)
            else:
                targets.append(item)
        named = [t.name if isinstance(t, Value) else t for t in targets if t is not None]
        if len(set(named)) != len(named):
            raise IRError(f"{op_type} would produce the same value twice")
        op = Op(op_type, domain=domain, name=name, order=next(self._order))
        for key, val in (attributes or {}).items():
            op.attributes[key] = val if isinstance(val, AttributeProto) else helper.make_attribute(key, val)
        self.nx.add_node(op)
        op.num_inputs = len(resolved)
        for slot, value in enumerate(resolved):
            if value is not None:
                self.nx.add_edge(value, op, key=slot)
        op.num_outputs = len(targets)
        for slot, target in enumerate(targets):
            if target is not None:
                value = target if isinstance(target, Value) else self.add_value(target)
                self.nx.add_edge(op, value, key=slot)
        self._touch()
        return op

    def _check_producible(self, value: Value) -> None:
        if self.producer(value) is not None:
            raise IRError(f"value {value.name!r} already has a producer")
        if value.tensor is not None or value.sparse is not None or self.is_input(value):
            raise IRError(f"value {value.name!r} is a graph input or initializer and cannot be produced by an op")

    def set_input(self, op: Op, slot: int, value: Value | str | None) -> None:
        """Make input `slot` of `op` read `value` (None omits an optional input)."""
        new = None if value is None else self._resolve(value)
        for src, _, key in list(self.nx.in_edges(op, keys=True)):
            if key == slot:
                self.nx.remove_edge(src, op, key=slot)
        if new is not None:
            self.nx.add_edge(new, op, key=slot)
        op.num_inputs = max(op.num_inputs, slot + 1)
        self._touch()

    def renumber(self, ops: Sequence[Op]) -> None:
        """Make `ops` (all of them, e.g. a topological order) the graph's insertion order."""
        if [op.order for op in ops] == sorted(op.order for op in ops) and len(ops) == len(self):
            return
        for index, op in enumerate(ops):
            op.order = index
        self._order = itertools.count(len(ops))
        self._touch()

    def set_attr(self, op: Op, name: str, value: Any) -> None:
        """Set (or, with value None, delete) an attribute of `op`."""
        if value is None:
            op.attributes.pop(name, None)
        else:
            op.attributes[name] = value if isinstance(value, AttributeProto) else helper.make_attribute(name, value)
        self._touch()

    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every reader of `old` (op input slots and graph outputs) read `new` instead."""
        if old is new:
            return
        self._resolve(new)
        edges = list(self.nx.out_edges(old, keys=True))
        for _, op, key in edges:
            if not isinstance(key, int):
                raise IRError(f"{old.name!r} is read by a subgraph of {op.label}; its uses cannot be moved")
        for _, op, key in edges:
            self.nx.remove_edge(old, op, key=key)
            self.nx.add_edge(new, op, key=key)
        self.outputs = [new if v is old else v for v in self.outputs]
        self._touch()

    def remove_op(self, op: Op, *, remove_outputs: bool = True) -> None:
        """Delete `op`. Its outputs must be unused (no readers, not graph outputs); they are deleted too
        unless `remove_outputs` is False, in which case they stay as values without producer."""
        outputs = [v for v in self.outputs_of(op) if v is not None]
        for value in outputs:
            if remove_outputs and (self.nx.out_degree(value) or self.is_output(value)):
                raise IRError(f"cannot remove {op.label}: its output {value.name!r} is still used")
        self.nx.remove_node(op)
        if remove_outputs:
            for value in outputs:
                self._drop_value(value)
        self._touch()

    def remove_value(self, value: Value) -> None:
        """Delete a value that nothing produces or reads (an unused initializer, say)."""
        if self.nx.degree(value) or self.is_output(value) or self.is_input(value):
            raise IRError(f"cannot remove value {value.name!r}: it is still connected")
        self._drop_value(value)
        self._touch()

    def _drop_value(self, value: Value) -> None:
        self.nx.remove_node(value)
        del self._values[value.name]
        self._initializers.pop(value, None)
        self._sparse_initializers.pop(value, None)
        self._value_info.pop(value, None)

    def rename_value(self, value: Value, new_name: str) -> None:
        """Give `value` a new, unused name."""
        if new_name == value.name:
            return
        if not new_name:
            raise IRError(f"cannot rename {value.name!r} to an empty name")
        if value.name in self.names_used_outside():
            raise IRError(f"cannot rename {value.name!r}: training info or a quantization annotation names it")
        if new_name in self._values:
            raise IRError(f"cannot rename {value.name!r}: a value named {new_name!r} already exists")
        for _, op, key in self.nx.out_edges(value, keys=True):
            if not isinstance(key, int):
                raise IRError(f"cannot rename {value.name!r}: a subgraph of {op.label} reads it by name")
        del self._values[value.name]
        value.name = new_name
        self._values[new_name] = value
        for proto in (value.info, self._value_info.get(value)):
            if proto is not None:
                proto.name = new_name
        if value.sparse is not None:
            value.sparse.values.name = new_name
        self._touch()

    def names_used_outside(self) -> set[str]:
        """Value names that parts of the model other than its nodes refer to: quantization annotations
        and training info (initialization/algorithm graphs and their bindings). Passes must keep these."""
        names = {a.tensor_name for a in self.graph_proto.quantization_annotation}
        for info in self.model.training_info:
            for binding in (*info.initialization_binding, *info.update_binding):
                names.update((binding.key, binding.value))
            for body in (info.initialization, info.algorithm):
                for node in body.node:
                    names.update(n for n in (*node.input, *node.output) if n)
        return names

    def set_type(self, value: Value, elem_type: int, shape: Sequence[int | str | None] | None) -> None:
        """Record a value's type and shape (graph inputs/outputs change their declaration; other values
        get a value_info entry)."""
        info = value.info
        if info is None:
            info = ValueInfoProto(name=value.name)
            value.info = info
        _set_tensor_type(info, elem_type, shape)
        if not (self.is_input(value) or self.is_output(value)) and value not in self._value_info:
            self._value_info[value] = info
        self._touch()

    @property
    def value_info(self) -> list[Value]:
        """Values that have a value_info entry, in the model's order."""
        return list(self._value_info)

    def _resolve(self, item: Value | str) -> Value:
        if isinstance(item, Value):
            if self._values.get(item.name) is not item:
                raise IRError(f"value {item.name!r} does not belong to this graph")
            return item
        value = self._values.get(item)
        if value is None:
            raise IRError(f"no value named {item!r}")
        return value

    def copy(self) -> Graph:
        """A deep copy; tensors are immutable, so weight data is shared, not copied."""
        clone = Graph(_copy.deepcopy(self.model), _copy.deepcopy(self.graph_proto))
        mapping: dict[Any, Any] = {}
        for node in self.nx.nodes:
            if isinstance(node, Value):
                new = Value(node.name, info=_copy.deepcopy(node.info), tensor=node.tensor,
                            sparse=_copy.deepcopy(node.sparse))
                clone._values[new.name] = new
            else:
                new = Op(node.op_type, node.domain, node.name, _copy.deepcopy(node.attributes),
                         _copy.deepcopy(node.extra), node.num_inputs, node.num_outputs, node.order)
            mapping[node] = new
            clone.nx.add_node(new)
        for u, v, key in self.nx.edges(keys=True):
            clone.nx.add_edge(mapping[u], mapping[v], key=key)
        clone.inputs = [mapping[v] for v in self.inputs]
        clone.outputs = [mapping[v] for v in self.outputs]
        clone._initializers = {mapping[v]: None for v in self._initializers}
        clone._sparse_initializers = {mapping[v]: None for v in self._sparse_initializers}
        clone._value_info = {}
        for v, proto in self._value_info.items():
            new = mapping[v]
            clone._value_info[new] = new.info if proto is v.info else _copy.deepcopy(proto)
        clone._order = itertools.count(max((op.order for op in self.ops()), default=-1) + 1)
        clone.external_data = self.external_data
        clone.source_files = self.source_files
        clone.mapped_files = self.mapped_files
        clone._output_overrides = _copy.deepcopy(self._output_overrides)
        return clone

    def to_onnx(self, *, weights: bool = True) -> onnx.ModelProto:
        """This graph as a ModelProto (see `onnxprune.ir.serde.to_onnx`)."""
        from .serde import to_onnx  # serde builds Graphs, so it imports this module, not the reverse

        return to_onnx(self, weights=weights)

    # ----------------------------------------------------------------- verification
    def verify(self) -> None:
        """Check the IR's invariants; raise IRError naming the first broken one."""
        for name, value in self._values.items():
            if value.name != name or value not in self.nx:
                raise IRError(f"value index out of sync for {name!r}")
            if self.nx.in_degree(value) > 1:
                raise IRError(f"value {name!r} has {self.nx.in_degree(value)} producers")
            if self.nx.in_degree(value) and (value.tensor is not None or self.is_input(value)):
                raise IRError(f"value {name!r} is both produced by an op and a graph input or initializer")
        for node in self.nx.nodes:
            if isinstance(node, Value):
                if self._values.get(node.name) is not node:
                    raise IRError(f"value {node.name!r} is in the graph but not indexed")
                continue
            for _, _, key in self.nx.out_edges(node, keys=True):
                if not (isinstance(key, int) and 0 <= key < node.num_outputs):
                    raise IRError(f"{node.label} has an output edge with bad slot {key!r}")
            for _, _, key in self.nx.in_edges(node, keys=True):
                if isinstance(key, int) and not 0 <= key < node.num_inputs:
                    raise IRError(f"{node.label} has an input edge with bad slot {key!r}")
            keys = [k for _, _, k in self.nx.in_edges(node, keys=True)]
            if len(keys) != len(set(keys)):
                raise IRError(f"{node.label} has two values in one input slot")
        for value in itertools.chain(self.inputs, self.outputs):
            if self._values.get(value.name) is not value:
                raise IRError(f"graph input/output {value.name!r} is not in the graph")
        for value in self.outputs:
            if self.nx.in_degree(value) == 0 and value.tensor is None and value.sparse is None \
                    and not self.is_input(value):
                raise IRError(f"graph output {value.name!r} has no producer")
        for op in self.ops():
            for value in self.inputs_of(op):
                if value is not None and self.nx.in_degree(value) == 0 and value.tensor is None \
                        and value.sparse is None and not self.is_input(value):
                    raise IRError(f"{op.label} reads {value.name!r}, which nothing defines")
        self.topological_order()  # raises on a cycle

def _set_tensor_type(info: ValueInfoProto, elem_type: int, shape: Sequence[int | str | None] | None) -> None:
    tensor_type = info.type.tensor_type
    tensor_type.elem_type = elem_type
    if shape is None:
        tensor_type.ClearField("shape")
        return
    tensor_type.shape.ClearField("dim")
    tensor_type.shape.SetInParent()
    for dim in shape:
        entry = tensor_type.shape.dim.add()
        if isinstance(dim, int):
            entry.dim_value = dim
        elif isinstance(dim, str):
            entry.dim_param = dim
