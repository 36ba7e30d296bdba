"""A small union-find (disjoint sets) over hashable items, with path halving and union by size."""

from __future__ import annotations

from collections.abc import Hashable, Iterable


class UnionFind:
    """Disjoint sets; `find` returns a set's representative, `union` merges two sets."""

    def __init__(self, items: Iterable[Hashable] = ()) -> None:
        self._parent: dict = {}
        self._size: dict = {}
        for item in items:
            self.add(item)

    def add(self, item: Hashable) -> None:
        """Make `item` a set of its own, if it is new."""
        if item not in self._parent:
            self._parent[item] = item
            self._size[item] = 1

    def __contains__(self, item: Hashable) -> bool:
        return item in self._parent

    def find(self, item: Hashable) -> Hashable:
        """The representative of `item`'s set."""
        parent = self._parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: Hashable, b: Hashable) -> Hashable:
        """Merge the sets of `a` and `b`; return the new representative."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]
        return ra

    def groups(self) -> dict[Hashable, list[Hashable]]:
        """Representative -> members, members in insertion order."""
        found: dict = {}
        for item in self._parent:
            found.setdefault(self.find(item), []).append(item)
        return found
