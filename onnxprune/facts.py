"""The typed results passes hand to later passes and to their callers ("facts"; DESIGN §4).

A pass declares the fact types it `provides` and `requires`; the AnalysisManager keeps them with the
same invalidation as analyses and the PassManager checks a pipeline against them before it runs. The
types live here, not beside their passes, because the commands read them and `onnxprune/` imports no
concrete pass. `Selection` (space.py) and `TrainResult` (train/config.py) are facts too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .space import Selection


@dataclass(frozen=True)
class Outcome:
    """What a selection achieves, measured exactly on the model `compact` would write: `removed` of
    `total` in the unit of `by` (groups, parameters or FLOPs), against `target`. `select` provides it
    beside the Selection."""

    fact_name: ClassVar[str] = "the outcome of select"
    record: ClassVar[bool] = True
    by: str
    target: float
    removed: float
    total: float

    @property
    def share(self) -> float:
        """Share of the total that the selection removes."""
        return self.removed / self.total if self.total else 0.0

    def describe(self) -> str:
        """One line: the share reached and the one asked for."""
        return (f"removes {100 * self.share:.2f}% of the model's {self.by} "
                f"(target {100 * self.target / self.total if self.total else 0:.2f}%)")


@dataclass(frozen=True)
class Rounding:
    """The multiple kept channel counts were rounded to (`prune --round-to auto` provides what it chose)."""

    fact_name: ClassVar[str] = "the rounding of kept counts"
    record: ClassVar[bool] = True
    multiple: int


@dataclass(frozen=True)
class Compaction:
    """What `compact` did: the selection it applied, the masked original (the reference a later `verify`
    compares against; callers `am.discard(Compaction)` to free it) and compact's report."""

    fact_name: ClassVar[str] = "a compacted model (its masked reference)"
    selection: Selection
    reference: Any  # the masked Graph
    report: Any  # passes.compact.CompactReport


@dataclass(frozen=True)
class VerifyReport:
    """Largest absolute and relative differences over all outputs and samples, and whether every
    output stayed within atol + tolerance * max|reference|."""

    fact_name: ClassVar[str] = "a verify report"
    record: ClassVar[bool] = True
    max_abs: float
    max_rel: float
    tolerance: float
    ok: bool = True

    def __str__(self) -> str:
        return (f"compact vs masked: max abs diff {self.max_abs:.3g}, max rel diff {self.max_rel:.3g} "
                f"(tolerance {self.tolerance:g}){'' if self.ok else ' FAILED'}")


@dataclass(frozen=True)
class Untying:
    """What `untie` split (a tuple of ops.sharing.Untied)."""

    fact_name: ClassVar[str] = "the untie report"
    record: ClassVar[bool] = True
    split: tuple


#: Facts about the function the graph computes, not its structure: they survive every transform that
#: keeps the function (cleanup, constant folding, shape inference, untie, training legalization).
FUNCTION_FACTS: tuple[type, ...] = (Compaction,)
