"""Why families are frozen, in kinds a user can act on: the reasons prune-space states name values
and ops one by one; here they are grouped (all "no pruning rule for LSTM" together, say), counted,
and paired with what would change them."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from .space import PruningSpace


@dataclass(frozen=True)
class FrozenKind:
    """One kind of reason: how many frozen families (and groups) it holds back, and what to do."""

    kind: str
    families: int
    groups: int
    advice: str


# (pattern over one stated reason, the kind it belongs to, what would change it); first match wins
_KINDS: tuple[tuple[str, str, str], ...] = (
    (r"no pruning rule for (\S+)", "no pruning rule for {0}",
     ("onnxprune freezes what it has no rule for (fail closed): a rule for the op in onnxprune/ops, or a model "
      "exported without it, would free these channels")),
    (r"\(the model's interface does not change\)", "the model's own inputs or outputs",
     "by design: pruning never changes the model's interface (image channels, logits); nothing to do"),
    ((r"shapes or attributes its rule does not handle|axis size is not static|dimension needed to resolve "
      r"broadcasting is unknown"), "shapes not known statically",
     "give --input-shape NAME=DIMS for dynamic inputs, so every size is known"),
    (r"does not map this axis|maps indices outside the axis", "an op whose rule does not map the axis",
     "an op rule that maps this axis (onnxprune/ops) would free it"),
    (r"not zero-invariant", "an op that does not keep zeros (not zero-invariant)",
     ("an op between the weights and their consumer turns zeros into non-zeros (Sigmoid, an added constant, a "
      "normalisation over the channels); pruning there would change the model, so it is refused")),
    (r"no parameter produces these channels", "no weight produces the channels",
     "these channels come from the input or from parameter-free ops; there are no weights to remove"),
    (r"a single group", "a single channel", "one group only: removing it would remove everything"),
    (r"last one feeding some tensor", "every group feeds a tensor alone (a Split output, say)",
     "removing any group would leave a tensor empty"),
    (r"read by a subgraph", "read inside an If/Loop/Scan body",
     "control-flow bodies stay opaque; a model without them (or with them folded) would free these channels"),
)


def _kind(reason: str) -> tuple[str, str, int]:
    """The kind of one stated reason, what would change it, and its place in `_KINDS`."""
    for index, (pattern, kind, advice) in enumerate(_KINDS):
        found = re.search(pattern, reason)
        if found:
            return kind.format(*found.groups()), advice, index
    return reason.split(": ", 1)[-1][:80], "see `onnxprune analyze MODEL` for each family's reasons", len(_KINDS)


def frozen_kinds(space: PruningSpace, top: int = 3) -> list[FrozenKind]:
    """The `top` commonest kinds of reason among the frozen families, most families first. A family
    with reasons of several kinds counts under each."""
    families: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    advice: dict[str, str] = {}
    rank: dict[str, int] = {}
    for family in space.families:
        if family.prunable:
            continue
        kinds = {}
        for reason in family.reasons:
            kind, hint, index = _kind(reason)
            kinds.setdefault(kind, hint)
            rank[kind] = index
        for kind, hint in kinds.items():
            families[kind] += 1
            groups[kind] += family.size
            advice[kind] = hint
    order = {kind: index for index, kind in enumerate(families)}  # ties: the order of _KINDS, most actionable first
    ranked = sorted(families, key=lambda k: (-families[k], -groups[k], rank.get(k, len(_KINDS)), order[k]))[:top]
    return [FrozenKind(k, families[k], groups[k], advice[k]) for k in ranked]


def describe_frozen(space: PruningSpace, top: int = 3) -> list[str]:
    """Lines saying why the model's families are frozen: the `top` commonest kinds with their counts
    and what would change them."""
    frozen = [f for f in space.families if not f.prunable]
    if not frozen:
        return []
    lines = [f"{len(frozen)} of {len(space.families)} families are frozen; the commonest reasons:"]
    for entry in frozen_kinds(space, top):
        lines.append(f"  {entry.families} famil{'y' if entry.families == 1 else 'ies'} ({entry.groups} groups): "
                     f"{entry.kind}; {entry.advice}")
    return lines


__all__ = ["FrozenKind", "describe_frozen", "frozen_kinds"]
