"""What every command does to a model before analysing or training it, so that weights look like weights.

Weights computed from constants (a Cast of fp16 storage, a Transpose of an initializer) become
initializers (`ops/folding.py`), and initializers an exporter shared between roles are untied
(`ops/sharing.py`). Both are exact; both are deterministic, so `prune` and a later `compact` of the
same file see the same search space.
"""

from __future__ import annotations

from .ir import Graph
from .ops.folding import fold_constant_weights
from .ops.sharing import describe_untied, untie


def prepare(graph: Graph, *, untie_all: bool = False) -> list[str]:
    """Fold constant-computed weights and untie shared initializers (in place); return one line for the
    user per kind of change made."""
    said = []
    untied = untie(graph, everything=untie_all)
    if untied:
        said.append(describe_untied(untied))
    folded = fold_constant_weights(graph)
    if folded:
        shown = ", ".join(folded[:3]) + (f", +{len(folded) - 3} more" if len(folded) > 3 else "")
        said.append(f"folded {len(folded)} value{'s' if len(folded) != 1 else ''} computed from constants into "
                    f"initializers ({shown})")
    return said
