"""`prune-space`: find the families of channels and heads that can be removed together (DESIGN §5).

1. Every op's coupling rule relates axes of its tensors (`onnxprune.ops.coupling`).
2. A union-find over (value, axis) joins axes that are one index space into classes.
3. Links (Concat offsets, Flatten blocks, head splits, Slice/Gather maps) tie indices of classes of
   different sizes; a second union-find over (class, index) turns each connected set of classes
   into a family and its indices into groups.
4. A family is prunable only if no member is frozen, a parameter produces it, and it is zero-invariant:
   with its producers' slices at zero, every contracted or reduced slice is exactly zero.

Over 500 lines on purpose: the four steps are one analysis over the same private facts (`_Facts`),
and no step is used apart from the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from networkx.utils import UnionFind

from onnxprune.ir import FLOAT_TYPES, Graph, Op, TensorType
from onnxprune.ops import OpView, rule_for
from onnxprune.ops.coupling import ABSENT, IN, OUT, Axis, Coupling
from onnxprune.ops.registry import is_transparent
from onnxprune.ops.rule import constant_value, is_quantized_weight
from onnxprune.ops.shape_consts import strip_stand_ins
from onnxprune.ops.shape_refine import needs_refining, refine_types, symbolic_bindings
from onnxprune.passmanager import AnalysisPass
from onnxprune.space import ACTIVATION, PRODUCER, Family, Member, PruningSpace

from .cost import CostAnalysis
from .shapes import ShapesAnalysis

Key = tuple[str, int]  # (value name, axis)


@dataclass
class _OpCoupling:
    op: Op
    coupling: Coupling
    inputs: list[str | None]
    outputs: list[str | None]

    def key(self, axis: Axis) -> Key | None:
        names = self.inputs if axis.side == IN else self.outputs
        name = names[axis.slot] if axis.slot < len(names) else None
        return None if name is None else (name, axis.axis)

    @cached_property
    def sources(self) -> dict[Axis, list[Axis]]:
        """Output axis -> the input axes the rule ties to it (by `same` or `links`); computed once."""
        found: dict[Axis, list[Axis]] = {}
        pairs = list(self.coupling.same) + [(a, b) for a, _, b, _ in self.coupling.links]
        for a, b in pairs:
            if a.side == OUT and b.side == IN:
                found.setdefault(a, []).append(b)
            elif b.side == OUT and a.side == IN:
                found.setdefault(b, []).append(a)
        return found


@dataclass
class _Facts:
    """Everything the op rules said, keyed by (value, axis)."""

    sizes: dict[Key, object] = field(default_factory=dict)
    classes: UnionFind = field(default_factory=UnionFind)
    links: list[tuple[Key, np.ndarray, Key, np.ndarray, str]] = field(default_factory=list)
    frozen: dict[Key, list[str]] = field(default_factory=dict)
    sinks: list[tuple[list[Key], Op]] = field(default_factory=list)
    roles: dict[Key, str] = field(default_factory=dict)
    ops: list[_OpCoupling] = field(default_factory=list)
    parameters: set[str] = field(default_factory=set)
    producing: dict[str, int] = field(default_factory=dict)  # value -> index in ops of the op writing it
    sinks_at: dict[Key, list[int]] = field(default_factory=dict)  # key -> indices in sinks that list it
    ties: list[tuple[Key, Key, bool, bool]] = field(default_factory=list)  # Reshape axis, dimension read, replaceable, scaled


@dataclass(frozen=True)
class PruneSpaceOptions:
    """Options of `prune-space`."""

    input_shapes: tuple[str, ...] = ()  # bind dynamic inputs first (e.g. "x=1x3x640x640"): rules need static sizes


class PruneSpaceAnalysis(AnalysisPass):
    """Find families of channels/heads that vanish together, prunable or frozen with a reason."""

    name = "prune-space"
    Options = PruneSpaceOptions

    def run(self, graph: Graph, am) -> PruningSpace:
        bound = self.options.input_shapes
        coupling_shapes = bound + symbolic_bindings(graph, bound)
        types = am.get(ShapesAnalysis, input_shapes=coupling_shapes)
        if needs_refining(graph, types):  # run-time reshape targets ONNX inference could not follow
            types = refine_types(graph, types)
        return build_space(graph, types, am.get(CostAnalysis, input_shapes=bound))


def build_space(graph: Graph, types: dict[str, TensorType], cost=None) -> PruningSpace:
    """The PruningSpace of `graph`, given the shapes analysis (and the cost analysis, for each group's
    parameter and FLOP counts)."""
    facts = _collect(graph, types)
    _propagate_roles(graph, facts)
    families = _families(graph, facts)
    if cost is not None:
        ops_of = _ops_by_value(graph, cost)
        counts: dict[int, np.ndarray] = {}  # members of one class share a table: count its rows once
        for family in families:
            for member in family.members:
                if id(member.table) not in counts:
                    counts[id(member.table)] = (member.table >= 0).sum(axis=1)
        families = [replace(f, params=group_parameters(graph, f, counts), flops=group_flops(f, ops_of, types, counts))
                    if f.size else f for f in families]
    return PruningSpace(tuple(families))


def _ops_by_value(graph: Graph, cost) -> dict[str, list[tuple[int, int]]]:
    """Value name -> (op index, FLOPs) of the ops that read or write it (ops with known, nonzero cost)."""
    ops_of: dict[str, list[tuple[int, int]]] = {}
    for index, (op, op_cost) in enumerate(zip(graph.topological_order(), cost.ops)):
        if op_cost.cost is None or not op_cost.cost.flops:
            continue
        for value in (*graph.inputs_of(op), *graph.outputs_of(op)):
            if value is not None:
                ops_of.setdefault(value.name, []).append((index, op_cost.cost.flops))
    return ops_of


def group_parameters(graph: Graph, family: Family, counts: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Floating-point parameter elements that removing each group deletes (`counts`: indices per group of
    each member table, by table id, when already known)."""
    removed = np.zeros(family.size)
    for member in family.parameters:
        value = graph.value(member.value)
        array = constant_value(graph, value)
        if array is None or np.asarray(array).dtype.kind != "f":
            continue
        array = np.asarray(array)
        rows = counts[id(member.table)] if counts else (member.table >= 0).sum(axis=1)
        removed += rows * (array.size // max(array.shape[member.axis], 1))
    return removed


def group_flops(family: Family, ops_of: dict[str, list[tuple[int, int]]], types: dict[str, TensorType],
                counts: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Estimated FLOPs that removing each group saves: every op touching the family loses the share
    of its work that the group's indices carry (the largest share over the op's tensors)."""
    shares: dict[int, tuple[int, np.ndarray]] = {}
    for member in family.members:
        touching = ops_of.get(member.value)
        if not touching:
            continue
        rows = counts[id(member.table)] if counts else (member.table >= 0).sum(axis=1)
        found = types.get(member.value)
        width = found.shape[member.axis] if found is not None and found.shape is not None else None
        share = rows / (width if isinstance(width, int) and width > 0 else max(rows.sum(), 1))
        for index, flops in touching:
            previous = shares.get(index)
            shares[index] = (flops, share if previous is None else np.maximum(previous[1], share))
    saved = np.zeros(family.size)
    for flops, share in shares.values():
        saved += flops * share
    return saved


def _is_parameter(graph: Graph, value) -> bool:
    """Floating-point initializers and Constant-op tensors are parameters, and so are the integer
    weights that DequantizeLinear reads (a quantized weight zeroes like a float one). Other integer
    constants are shapes and indices: they are sliced with their axis when needed, never zeroed."""
    if value.tensor is not None:
        return value.tensor.data_type in FLOAT_TYPES or is_quantized_weight(graph, value)
    producer = graph.producer(value)
    if producer is None or producer.op_type != "Constant" or producer.domain not in ("", "ai.onnx"):
        return False
    array = constant_value(graph, value)
    return array is not None and np.asarray(array).dtype.kind == "f"


def _collect(graph: Graph, types: dict[str, TensorType]) -> _Facts:
    facts = _Facts()
    registered: set[str] = set()

    def register(name: str) -> None:
        if name in registered:
            return
        registered.add(name)
        found = types.get(name)
        value = graph.value(name)
        shape = value.tensor.shape if value.tensor is not None else (found.shape if found is not None else None)
        if shape is None:
            return
        for axis, size in enumerate(shape):
            key = (name, axis)
            if key not in facts.classes.parents:
                facts.classes[key]  # looking an item up adds it as a set of its own
                facts.sizes[key] = size

    for value in graph.values():
        if _is_parameter(graph, value):
            facts.parameters.add(value.name)
    capturing = {op for _, op, key in graph.nx.edges(keys=True) if not isinstance(key, int)}  # subgraph readers
    for op in graph.topological_order():
        inputs = [v.name if v is not None else None for v in graph.inputs_of(op)]
        outputs = [v.name if v is not None else None for v in graph.outputs_of(op)]
        for name in (*inputs, *outputs):
            if name is not None and name not in registered:
                register(name)
        view = OpView.of(graph, op, types)
        rule = rule_for(op)
        coupling = None
        if rule is not None and rule.coupling is not None:
            coupling = rule.coupling.couple(view)
            reason = f"{op.label}: shapes or attributes its rule does not handle"
        else:
            reason = f"{op.label}: no pruning rule for {op.domain + '.' if op.domain else ''}{op.op_type}"
        if coupling is None:
            coupling = Coupling().freeze_all(view, reason)
        entry = _OpCoupling(op, coupling, inputs, outputs)
        for name in outputs:
            if name is not None:
                facts.producing[name] = len(facts.ops)
        facts.ops.append(entry)
        for a, b in coupling.same:
            ka, kb = entry.key(a), entry.key(b)
            if ka in facts.classes.parents and kb in facts.classes.parents:
                facts.classes.union(ka, kb)
        for a, name, axis, replaceable, scaled in coupling.ties:  # read at run time: settled once families are known
            ka = entry.key(a)
            register(name)
            if ka in facts.classes.parents and (name, axis) in facts.classes.parents:
                facts.ties.append((ka, (name, axis), replaceable, scaled))
        for a, idx_a, b, idx_b in coupling.links:
            ka, kb = entry.key(a), entry.key(b)
            if ka in facts.classes.parents and kb in facts.classes.parents:
                facts.links.append((ka, np.asarray(idx_a), kb, np.asarray(idx_b), op.op_type))
        for axis, why in coupling.frozen + _unmentioned(view, coupling, op):
            key = entry.key(axis)
            if key is not None:
                facts.frozen.setdefault(key, []).append(why)
        for alternatives in coupling.sinks:
            keys = [k for k in (entry.key(a) for a in alternatives) if k is not None]
            if keys:
                for key in keys:
                    facts.sinks_at.setdefault(key, []).append(len(facts.sinks))
                facts.sinks.append((keys, op))
        for axis, role in coupling.roles.items():
            key = entry.key(axis)
            if key is not None and (role == PRODUCER or key not in facts.roles):
                facts.roles[key] = role  # a parameter that produces anywhere is a producer
        for captured in graph.captures_of(op) if op in capturing else ():
            for key in [k for k in facts.sizes if k[0] == captured.name]:
                facts.frozen.setdefault(key, []).append(f"read by a subgraph of {op.label}")
    for value, what in [(v, "model input") for v in graph.inputs] + [(v, "model output") for v in graph.outputs]:
        register(value.name)
        for key in [k for k in facts.sizes if k[0] == value.name]:
            facts.frozen.setdefault(key, []).insert(0, f"{what} '{value.name}' (the model's interface does not change)")
    return facts


def _unmentioned(view: OpView, coupling: Coupling, op: Op) -> list[tuple[Axis, str]]:
    """Axes of the op's tensors that its rule says nothing about: they freeze (fail closed)."""
    mentioned = coupling.mentioned()
    found = []
    for side, types in ((IN, view.inputs), (OUT, view.outputs)):
        for slot, t in enumerate(types):
            for axis in range(t.rank if t is not None and t.rank is not None else 0):
                if Axis(side, slot, axis) not in mentioned:
                    found.append((Axis(side, slot, axis), f"{op.label} does not map this axis"))
    return found


def _propagate_roles(graph: Graph, facts: _Facts) -> None:
    """A role given to the output of a transparent op (Transpose(W) feeding MatMul) is the role of the
    parameter it came from."""
    changed = True
    while changed:
        changed = False
        for entry in facts.ops:
            if not is_transparent(entry.op):
                continue
            for a, b in entry.coupling.same:
                ka, kb = entry.key(a), entry.key(b)
                if ka is None or kb is None or a.side != IN:
                    continue
                if kb in facts.roles and facts.roles.get(ka) != facts.roles[kb] and \
                        (ka not in facts.roles or facts.roles[kb] == PRODUCER):
                    facts.roles[ka] = facts.roles[kb]
                    changed = True


def _families(graph: Graph, facts: _Facts) -> list[Family]:
    class_of = {key: facts.classes[key] for key in facts.sizes}
    members_of: dict = {}
    for key in facts.sizes:  # insertion order follows the topological order of first use
        members_of.setdefault(class_of[key], []).append(key)
    components = UnionFind(members_of)
    for ka, _, kb, _, _ in facts.links:
        components.union(class_of[ka], class_of[kb])
    _settle_ties(facts, class_of, components)
    families: list[Family] = []
    for classes in _sets_in_order(components):
        keys = [k for c in classes for k in members_of[c]]
        if not any(k[0] in facts.parameters for k in keys) or all(k[0] in facts.parameters for k in keys):
            continue  # no parameter (batch, space) or no activation (kernel windows) on these axes
        families.extend(_component_families(graph, facts, classes, members_of, class_of, len(families)))
    return families


def _sets_in_order(sets: UnionFind) -> list[list]:
    """The sets, each listing its members in insertion order, sets in the order of their first member.
    networkx's `to_sets` gives Python sets, whose order follows string hashes (PYTHONHASHSEED), and
    family ids and member order must not."""
    found: dict = {}
    for item in sets.parents:
        found.setdefault(sets[item], []).append(item)
    return list(found.values())


def _settle_ties(facts: _Facts, class_of: dict, components: UnionFind) -> None:
    """A Reshape target element read from another tensor's dimension at run time (`ties`): index i of
    the Reshape's axis is index i of the read axis. Within one family that is already so (the
    identity link only confirms it); a dynamic dimension (batch, sequence) joins; a static dimension
    of another family must keep its size (compact writes the Reshape's new size as a constant, where
    the piece holding it is static; otherwise the Reshape's axis freezes too). A dimension times a
    constant (key/value heads x repeats) must lie in the Reshape axis's family, and compact writes the
    constant; of another family (a batch the user bound with --input-shape, times heads) both freeze,
    since a constant there would fix the batch size."""
    for ka, kb, replaceable, scaled in facts.ties:
        size = facts.sizes.get(kb)
        static = isinstance(size, int) and strip_stand_ins(size) == size
        if scaled and not replaceable:  # a multiple of the dimension: only a constant written by compact is exact
            facts.frozen.setdefault(ka, []).append("Reshape target size is a run-time multiple of a dimension")
        if (static or scaled) and components[class_of[ka]] != components[class_of[kb]]:
            facts.frozen.setdefault(kb, []).append("Shape reads this dimension to size a Reshape axis of another "
                                                   "family")
            if not replaceable:  # the size sits in a piece with run-time sizes: compact could not write it
                facts.frozen.setdefault(ka, []).append("Reshape target size is read at run time from another family")
            elif scaled:  # a multiple of a dimension the user bound (batch x heads): a constant would fix the batch
                facts.frozen.setdefault(ka, []).append("Reshape target size is a run-time multiple of a dimension "
                                                       "of another family")
            continue
        if scaled:
            continue  # one family already (checked above); the sizes differ, so no index-level link
        components.union(class_of[ka], class_of[kb])
        if isinstance(size, int):
            indices = np.arange(size)
            facts.links.append((ka, indices, kb, indices, "Shape"))


def _component_families(graph: Graph, facts: _Facts, classes: list, members_of: dict, class_of: dict,
                        first_id: int) -> list[Family]:
    """Index-level union over linked classes: groups, then one family per origin class (the first
    class, in topological order, that holds the group: the producer that made the channel)."""
    sizes, bad = {}, []
    for c in classes:
        found = {facts.sizes[k] for k in members_of[c]}
        static = {d for d in found if isinstance(d, int)}
        # Rules join axes only when they are equal, so one static size decides for the whole class.
        size = next(iter(static)) if len(static) == 1 else None
        if size is None:
            bad.append(f"axis size is not static or not consistent ({', '.join(map(str, sorted(found, key=str)))})")
        sizes[c] = size
    keys = [k for c in classes for k in members_of[c]]
    key_set = set(keys)
    links = [link for link in facts.links if link[0] in key_set]
    if not bad and any(sizes[c] == 0 for c in classes):
        bad.append("the axis has size 0: nothing to prune")
    if bad:
        return [Family(first_id, _name(keys, facts), 0, "channel", (), tuple(bad))]
    if len(classes) == 1 and not links:  # the common case (conv → norm → activation): index i is group i
        identity = np.arange(sizes[classes[0]])
        return [_family(graph, facts, classes, members_of, sizes, {classes[0]: 0}, identity, identity, links, bad,
                        first_id)]
    offsets, total = {}, 0
    for c in classes:
        offsets[c] = total
        total += sizes[c]
    left, right = [], []
    for ka, idx_a, kb, idx_b, op_type in links:
        ca, cb = class_of[ka], class_of[kb]
        if len(idx_a) != len(idx_b) or idx_a.min(initial=0) < 0 or idx_b.min(initial=0) < 0 or \
                idx_a.max(initial=-1) >= sizes[ca] or idx_b.max(initial=-1) >= sizes[cb]:
            bad.append(f"{op_type} maps indices outside the axis")
            continue
        left.append(idx_a + offsets[ca])
        right.append(idx_b + offsets[cb])
    roots = _components(total, np.concatenate(left) if left else np.zeros(0, np.int64),
                        np.concatenate(right) if right else np.zeros(0, np.int64))
    _, first_seen, group_of = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first_seen))  # number groups by where they first appear
    group_of = rank[group_of]
    origin = np.empty(len(first_seen), dtype=np.int64)  # the class index where each group first appears
    class_at = np.repeat(np.arange(len(classes)), [sizes[c] for c in classes])
    origin[group_of[np.sort(first_seen)]] = class_at[np.sort(first_seen)]
    families = []
    for origin_class in np.unique(origin):
        groups = np.flatnonzero(origin == origin_class)  # ascending: keeps the producer's channel order
        families.append(_family(graph, facts, classes, members_of, sizes, offsets, group_of, groups, links, bad,
                                first_id + len(families)))
    return families


def _family(graph: Graph, facts: _Facts, classes: list, members_of: dict, sizes: dict, offsets: dict,
            group_of: np.ndarray, groups: np.ndarray, links: list, bad: list, family_id: int) -> Family:
    local = np.full(group_of.max(initial=-1) + 1, -1, dtype=np.int64)
    local[groups] = np.arange(len(groups))
    members, keys = [], []
    for c in classes:
        owner = local[group_of[offsets[c]:offsets[c] + sizes[c]]]
        if not (owner >= 0).any():
            continue
        table = _table(owner, len(groups))
        for key in members_of[c]:
            role = facts.roles.get(key, PRODUCER) if key[0] in facts.parameters else ACTIVATION
            members.append(Member(key[0], key[1], table, role))
            keys.append(key)
    key_set = set(keys)
    kind = "head" if any(link[4] == "Reshape" and link[0] in key_set for link in links) else "channel"
    reasons = list(bad)
    for key in keys:
        for why in facts.frozen.get(key, ()):
            reasons.append(f"{key[0]} axis {key[1]}: {why}")
    if not any(m.role == PRODUCER for m in members):
        reasons.append("no parameter produces these channels")
    if len(groups) < 2:
        reasons.append("a single group: nothing can be removed without removing everything")
    elif _pinned(facts, members, len(groups)).all():
        reasons.append("every group is the last one feeding some tensor (a Split output, say): removing any "
                       "would leave it empty")
    reasons.extend(_zero_invariance(graph, facts, key_set))
    return Family(family_id, _name(keys, facts), len(groups), kind, tuple(members), tuple(dict.fromkeys(reasons)))


def _components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected components of n nodes joined by edges left[i]-right[i]: each node gets the smallest
    node of its component (label propagation with pointer jumping, vectorised)."""
    label = np.arange(n)
    if not len(left):
        return label
    while True:
        smaller = np.minimum(label[left], label[right])
        before = label.copy()
        np.minimum.at(label, left, smaller)
        np.minimum.at(label, right, smaller)
        label = label[label]  # jump to the label's label
        label = label[label]
        if np.array_equal(label, before):
            return label


def _pinned(facts: _Facts, members: list[Member], n_groups: int) -> np.ndarray:
    """Per group: True if removing it alone would empty one of the family's member axes."""
    pinned = np.zeros(n_groups, dtype=bool)
    for member in members:
        size = facts.sizes.get((member.value, member.axis))
        if isinstance(size, int):
            owned = (member.table >= 0).sum(axis=1)
            pinned |= (owned > 0) & (owned >= size)
    return pinned


def _table(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Row g lists the positions where `groups == g` (-1 entries belong to no group here), padded with -1."""
    if len(groups) == n_groups and np.array_equal(groups, np.arange(n_groups)):
        return groups.astype(np.int64).reshape(-1, 1)
    positions = np.flatnonzero(groups >= 0)
    groups = groups[positions]
    counts = np.bincount(groups, minlength=n_groups)
    width = int(counts.max(initial=0))
    table = np.full((n_groups, max(width, 1)), -1, dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    columns = np.arange(len(groups)) - np.repeat(starts, counts)
    table[groups[order], columns] = positions[order]
    return table


def _name(keys: list[Key], facts: _Facts) -> str:
    for key in keys:
        if key[0] in facts.parameters and facts.roles.get(key, PRODUCER) == PRODUCER:
            return f"{key[0]}:{key[1]}"
    return f"{keys[0][0]}:{keys[0][1]}"


def _zero_invariance(graph: Graph, facts: _Facts, keys: set[Key]) -> list[str]:
    """With every producer slice of a group at zero, is every contracted slice zero? Walk the ops that
    write the family's values in topological order, tracking for each (value, axis) of the family
    whether its group slices are zero; report the sinks that would not be. A value can carry the
    family on two axes (x + x^T), so states are per axis, and an output axis takes its inputs' states
    through the axes the rule ties to it. Cost is linear in the family's size."""
    zero: dict[Key, bool] = {}
    poisoned: set[Key] = set()
    blame: dict[Key, str] = {}
    axes_of: dict[str, list[int]] = {}
    for name, axis in keys:
        axes_of.setdefault(name, []).append(axis)

    def state(key: Key) -> bool:
        if key[0] in facts.parameters:
            return facts.roles.get(key, PRODUCER) == PRODUCER  # producers are zeroed; consumers are not
        return zero.get(key, False)

    writers = sorted({facts.producing[k[0]] for k in keys if k[0] in facts.producing})
    for index in writers:
        entry = facts.ops[index]
        if entry.op.op_type == "Constant":
            continue
        sources = entry.sources
        for slot, name in enumerate(entry.outputs):
            for axis in axes_of.get(name, ()) if name is not None else ():
                key = (name, axis)
                flags: list[object] = [ABSENT if n is None else None for n in entry.inputs]
                tainted = False
                for src in sources.get(Axis(OUT, slot, axis), ()):
                    src_key = entry.key(src)
                    if src_key in keys:
                        flags[src.slot] = state(src_key) if flags[src.slot] is not True else True
                        tainted = tainted or src_key in poisoned
                if tainted or entry.coupling.nonfinite(flags, slot):
                    poisoned.add(key)  # inf/NaN on the slice: 0 * inf is NaN, so no rule makes it zero
                    zero[key] = False
                    blame.setdefault(key, entry.op.label)
                    continue
                zero[key] = bool(entry.coupling.zero(flags, slot))
                if not zero[key]:
                    upstream = [blame[k] for k in (entry.key(s) for s in sources.get(Axis(OUT, slot, axis), ()))
                                if k in blame]
                    blame[key] = upstream[0] if upstream and all(f is not True for f in flags) else entry.op.label
    reasons = []
    for index in sorted({i for k in keys for i in facts.sinks_at.get(k, ())}):
        alternatives, op = facts.sinks[index]
        if not any(state(k) for k in alternatives if k in keys):
            culprit = next((blame[k] for k in alternatives if k in blame), None)
            detail = f" ({culprit} does not keep zeros)" if culprit else ""
            reasons.append(f"not zero-invariant: {op.label} contracts the channels, which are not zero when "
                           f"the group's parameters are{detail}")
    return reasons
