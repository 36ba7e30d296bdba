"""The search-space data model: Member, Family, PruningSpace, Selection (DESIGN §5, §7).

A family is one index space of `size` groups. Each member is an axis of a value (activation or
parameter) with a table: row g lists the indices that group g occupies on that axis (-1 pads rows
of a ragged table). Removing group g removes row g of every member. A Selection names the pruned
groups of each family; it is plain JSON that also spells out every pruned parameter slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np

from .errors import UserError

ACTIVATION, PRODUCER, CONSUMER = "activation", "producer", "consumer"


@dataclass(frozen=True, eq=False)
class Member:
    """Axis `axis` of value `value`; `table[g]` holds group g's indices there (-1 = none)."""

    value: str
    axis: int
    table: np.ndarray
    role: str  # ACTIVATION, or for parameters PRODUCER (zeroed with the group) / CONSUMER (only sliced)

    def indices(self, groups) -> np.ndarray:
        """Sorted indices that `groups` occupy on this axis."""
        rows = self.table[np.asarray(list(groups), dtype=np.int64)].reshape(-1)
        return np.unique(rows[rows >= 0])

    @property
    def is_parameter(self) -> bool:
        """True for parameter (initializer or Constant) axes."""
        return self.role != ACTIVATION


@dataclass(frozen=True, eq=False)
class Family:
    """Channels (or heads) that vanish together: `size` groups over `members`."""

    id: int
    name: str
    size: int
    kind: str  # "channel" or "head"
    members: tuple[Member, ...]
    reasons: tuple[str, ...] = ()  # why it is frozen; empty when prunable
    params: np.ndarray | None = None  # per group: parameter elements its removal deletes
    flops: np.ndarray | None = None  # per group: estimated FLOPs its removal saves

    @property
    def prunable(self) -> bool:
        """True when groups of this family may be removed."""
        return not self.reasons

    @property
    def producers(self) -> list[Member]:
        """Parameter axes zeroed with a group (the group's parameters)."""
        return [m for m in self.members if m.role == PRODUCER]

    @property
    def parameters(self) -> list[Member]:
        """Every parameter axis of the family (producers and consumers)."""
        return [m for m in self.members if m.is_parameter]

    def group_slices(self, group: int) -> list[dict]:
        """The parameter slices of one group, as plain data."""
        return [{"initializer": m.value, "axis": m.axis, "indices": m.indices([group]).tolist(), "role": m.role}
                for m in self.parameters]

    def describe(self) -> dict:
        """Plain-data summary (for analyze --json)."""
        return {"id": self.id, "name": self.name, "size": self.size, "kind": self.kind, "prunable": self.prunable,
                "reasons": list(self.reasons),
                "params": int(self.params.sum()) if self.params is not None else None,
                "flops": int(self.flops.sum()) if self.flops is not None else None,
                "members": [{"value": m.value, "axis": m.axis, "role": m.role, "width": int(m.table.shape[1])}
                            for m in self.members]}


@dataclass(frozen=True)
class PruningSpace:
    """Every family of a model, prunable or frozen with reasons."""

    families: tuple[Family, ...]

    def family(self, family_id: int) -> Family:
        """The family with this id."""
        return self.families[family_id]

    @property
    def prunable(self) -> list[Family]:
        """Families whose groups may be removed."""
        return [f for f in self.families if f.prunable]

    def axis_size(self, value: str, axis: int) -> int:
        """Number of indices of (value, axis) that families cover: its size, for a member axis (known
        even where shape inference left the dimension symbolic)."""
        return self._axis_sizes.get((value, axis), 0)

    @cached_property
    def _axis_sizes(self) -> dict[tuple[str, int], int]:
        sizes: dict[tuple[str, int], int] = {}
        for family in self.families:
            for m in family.members:
                sizes[(m.value, m.axis)] = sizes.get((m.value, m.axis), 0) + int((m.table >= 0).sum())
        return sizes


@dataclass
class Selection:
    """Pruned groups per family id (and, later, erased regions). Plain data; see `to_json`. Passes hand
    it on as a fact (`select` and `sparse-train` provide it, `compact` requires it)."""

    fact_name: ClassVar[str] = "a selection"
    pruned: dict[int, tuple[int, ...]] = field(default_factory=dict)
    erased: tuple[int, ...] = ()  # region ids of the model's ErasingSpace

    def check_regions(self, erasing: ErasingSpace | None) -> None:
        """Refuse erased regions that do not exist, or a set that would leave a merge with no input."""
        if not self.erased:
            return
        known = len(erasing.regions) if erasing is not None else 0
        if any(not 0 <= r < known for r in self.erased):
            raise UserError(f"selection erases region(s) {sorted(self.erased)}, but the model has {known} regions")
        if not erasing.admissible(self.erased):
            group = next(g for g in erasing.exclusive if set(g) <= set(self.erased))
            raise UserError(f"selection erases regions {', '.join(map(str, group))} together, which would leave "
                            f"their merge ({erasing.regions[group[0]].merge}) with no input")

    def check(self, space: PruningSpace) -> None:
        """Refuse selections that touch frozen families, name groups that do not exist, or empty a family."""
        for family_id, groups in self.pruned.items():
            if not 0 <= family_id < len(space.families):
                raise UserError(f"selection names family {family_id}, but the model has {len(space.families)}")
            family = space.family(family_id)
            if groups and not family.prunable:
                raise UserError(f"selection prunes family {family_id} ({family.name}), which is frozen: "
                                f"{family.reasons[0]}")
            if any(not 0 <= g < family.size for g in groups):
                raise UserError(f"selection names a group outside family {family_id} ({family.size} groups)")
            if len(set(groups)) >= family.size:
                raise UserError(f"selection removes every group of family {family_id} ({family.name})")
        for (value, axis), removed in self.removed(space).items():
            if len(removed) >= space.axis_size(value, axis):
                raise UserError(f"selection removes every index of {value} axis {axis}, which would leave an "
                                "empty tensor; keep at least one group of each family feeding it")

    def removed(self, space: PruningSpace) -> dict[tuple[str, int], np.ndarray]:
        """(value, axis) -> sorted indices removed there, over all families."""
        removed: dict[tuple[str, int], list[np.ndarray]] = {}
        for family_id, groups in self.pruned.items():
            if not groups:
                continue
            for member in space.family(family_id).members:
                removed.setdefault((member.value, member.axis), []).append(member.indices(groups))
        return {key: np.unique(np.concatenate(parts)) for key, parts in removed.items()}

    def clashes(self, space: PruningSpace, erasing: ErasingSpace | None) -> dict[int, str]:
        """Pruned families that reach into an erased region: family id -> a member value inside it."""
        if not self.erased:
            return {}
        gone = {name for r in self.erased for name in erasing.regions[r].values}
        found = {}
        for family_id, groups in self.pruned.items():
            inside = [m.value for m in space.family(family_id).members if m.value in gone] if groups else []
            if inside:
                found[family_id] = inside[0]
        return found

    def without_clashes(self, space: PruningSpace, erasing: ErasingSpace | None) -> Selection:
        """This selection minus the pruned groups of families that reach into an erased region (the region
        goes whole; its channels need no pruning). Kept zero channels still compute zeros, so compact
        stays exact."""
        clashing = self.clashes(space, erasing)
        return Selection({f: g for f, g in self.pruned.items() if f not in clashing}, self.erased)

    @property
    def group_count(self) -> int:
        """Number of pruned groups."""
        return sum(len(g) for g in self.pruned.values())

    def to_json(self, space: PruningSpace, erasing: ErasingSpace | None = None) -> dict:
        """Plain JSON: for each pruned family, its name (checked when applied), its groups, and every
        pruned group's parameter slices, so anyone can rebuild the masked model; and the erased regions."""
        families = []
        for family_id, groups in sorted(self.pruned.items()):
            if not groups:
                continue
            family = space.family(family_id)
            families.append({"family": family_id, "name": family.name, "size": family.size,
                             "groups": sorted(int(g) for g in groups),
                             "slices": {str(g): family.group_slices(g) for g in sorted(groups)}})
        data = {"format": "onnxprune.selection/1", "families": families}
        if self.erased:
            data["regions"] = self.regions_json(erasing)
        return data

    def regions_json(self, erasing: ErasingSpace) -> list[dict]:
        """The erased regions as plain data: what each merge loses and which parameters the masked
        model zeroes."""
        return [{"region": r, "merge": erasing.regions[r].merge, "exit": erasing.regions[r].exit,
                 "group": list(erasing.regions[r].group)} for r in sorted(self.erased)]

    @classmethod
    def from_json(cls, data: dict, space: PruningSpace, erasing: ErasingSpace | None = None) -> Selection:
        """Read a selection written by `to_json` (or by hand), checking it against `SELECTION_SCHEMA`
        and against this model's families."""
        if not isinstance(data, dict) or data.get("format") != "onnxprune.selection/1":
            raise UserError("not an onnxprune selection (expected \"format\": \"onnxprune.selection/1\")")
        _check_schema(data)
        pruned = {}
        for entry in data.get("families", []):
            family_id = int(entry["family"])
            if not 0 <= family_id < len(space.families) or space.family(family_id).name != entry.get("name"):
                raise UserError(f"selection family {family_id} ({entry.get('name')}) does not match this model's "
                                "families; was it made for another model?")
            pruned[family_id] = tuple(sorted(int(g) for g in entry["groups"]))
        erased = []
        for entry in data.get("regions", []):
            region = int(entry["region"])
            if erasing is None or not 0 <= region < len(erasing.regions) or \
                    erasing.regions[region].exit != entry.get("exit"):
                raise UserError(f"selection region {region} (exit {entry.get('exit')}) does not match this model's "
                                "regions; was it made for another model?")
            erased.append(region)
        selection = cls(pruned, tuple(sorted(erased)))
        selection.check(space)
        selection.check_regions(erasing)
        return selection


#: What a selection file must look like (extra keys such as "slices" and "size" are information).
SELECTION_SCHEMA = {
    "type": "object",
    "required": ["format"],
    "properties": {
        "format": {"const": "onnxprune.selection/1"},
        "families": {"type": "array", "items": {
            "type": "object", "required": ["family", "groups"],
            "properties": {"family": {"type": "integer", "minimum": 0}, "name": {"type": "string"},
                           "groups": {"type": "array", "uniqueItems": True,
                                      "items": {"type": "integer", "minimum": 0}}}}},
        "regions": {"type": "array", "items": {
            "type": "object", "required": ["region"],
            "properties": {"region": {"type": "integer", "minimum": 0}, "exit": {"type": "string"}}}},
    },
}


def _check_schema(data: dict) -> None:
    """One line naming the first place where `data` breaks SELECTION_SCHEMA."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SELECTION_SCHEMA).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise UserError(f"not a valid selection at {where}: {error.message[:200]}")


# ====================================================================== erasing space (DESIGN §6)
@dataclass(frozen=True)
class Region:
    """An erasable single-entry single-exit subgraph: `ops` compute `exit` from `entry` alone (plus
    constants), and `exit` only feeds input `slot` of the merge op `merge` (an Add or Sum), which another
    path from `entry` also reaches. Erasing it replaces the merge by its other input(s)."""

    id: int
    entry: str  # the value the region reads
    exit: str  # the value the region produces
    merge: str  # name of the Add/Sum op it feeds
    slot: int  # the merge's input slot that reads `exit`
    ops: tuple[str, ...]  # op names, in topological order
    parameters: tuple[str, ...]  # floating-point initializers only the region reads (they go with it)
    group: tuple[str, ...] = ()  # the initializers whose zeroing makes the exit exactly zero (the erasing group)
    params: int = 0  # parameter elements
    flops: int = 0  # FLOPs per run of the region's ops
    parent: int | None = None  # the smallest region that strictly contains this one
    values: tuple[str, ...] = ()  # every value the region makes or alone reads (gone once it is erased)

    def describe(self) -> dict:
        """Plain-data summary (for analyze --json)."""
        return {"id": self.id, "entry": self.entry, "exit": self.exit, "merge": self.merge, "slot": self.slot,
                "ops": len(self.ops), "op_names": list(self.ops), "parameters": list(self.parameters),
                "group": list(self.group),
                "params": self.params, "flops": self.flops, "parent": self.parent}


@dataclass(frozen=True)
class ErasingSpace:
    """Every erasable region of a model, and which sets of them may not be erased together (erasing all
    of one set would leave its merge with no input)."""

    regions: tuple[Region, ...]
    exclusive: tuple[tuple[int, ...], ...] = ()

    def admissible(self, erased) -> bool:
        """True if erasing the regions `erased` (ids) together leaves every merge an input."""
        erased = set(erased)
        return not any(set(group) <= erased for group in self.exclusive)
