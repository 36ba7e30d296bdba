"""Which attention heads of real exports are prunable: one row per export, then why the rest freezes.

For each ONNX file (the attention exports of `models/exports.py`, or files given): the families of the
pruning search space, how many are prunable, how many are head families (prunable / all), and the
first reason of every frozen family, counted. With `--check N`, also N seeded random selections
(the last leaving one group per family) compacted and compared with the masked model.

    python models/exports.py /tmp/att --attention --exporter torchscript --opset 17
    python benchmarks/attention_survey.py /tmp/att/*.onnx [--check 3] [--reasons]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
from onnxprune.passes.compact import compact_graph, masked_graph
from onnxprune.passes.verify import compare, random_inputs

import onnxprune
from onnxprune.choose import AxisBudget
from onnxprune.passmanager import AnalysisManager
from onnxprune.runtime import inference_session
from onnxprune.space import Selection


def random_selection(space, rng: np.random.Generator, leave_one: bool) -> Selection:
    """Random groups of every prunable family (all but one with `leave_one`), never emptying a tensor."""
    budget, pruned = AxisBudget(space), {}
    for family in space.prunable:
        count = family.size - 1 if leave_one else int(rng.integers(1, family.size))
        candidates = rng.permutation(family.size)[:count]
        pruned[family.id] = tuple(sorted(int(g) for g in candidates if budget.take(family, int(g))))
    return Selection(pruned)


def sample_feeds(graph, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs with batch 2 and sequence 5 (symbolic dims after the first), and an attention mask
    of zeros and ones that keeps the first token of every row (a row masked out entirely is not a
    sample anyone feeds)."""
    bindings = []
    for value in graph.inputs:
        if not value.is_initializer and value.shape is not None:
            dims = [d if isinstance(d, int) and d > 0 else (2 if axis == 0 else 5) for axis, d in enumerate(value.shape)]
            bindings.append(f"{value.name}={'x'.join(map(str, dims))}")
    feeds = random_inputs(graph, rng, 2, bindings)
    if "attention_mask" in feeds:
        mask = rng.integers(0, 2, feeds["attention_mask"].shape)
        mask[:, 0] = 1
        feeds["attention_mask"] = mask.astype(feeds["attention_mask"].dtype)
    return feeds


def survey(path: Path, checks: int, reasons: bool) -> bool:
    """Print one export's row (and frozen reasons, and compact == masked figures); False if a check failed."""
    graph = onnxprune.load(path)
    am = AnalysisManager(graph)
    space = am.get("prune-space")
    heads = [f for f in space.families if f.kind == "head"]
    print(f"{path.stem:34s} families {len(space.families):3d}  prunable {len(space.prunable):3d}  "
          f"heads {sum(f.prunable for f in heads)}/{len(heads)}  "
          f"head sizes {[f.size for f in heads if f.prunable]}")
    if reasons:
        counted = collections.Counter(f.reasons[0] for f in space.families if not f.prunable)
        for reason, count in counted.most_common():
            print(f"    frozen x{count}: {reason[:220]}")
    ok = True
    if checks:
        try:
            inference_session(graph)
        except Exception as exc:  # noqa: BLE001 (onnxruntime's own exception types)
            print(f"    not checked: onnxruntime cannot load the export itself ({str(exc).splitlines()[0][:160]})")
            return True
    for trial in range(checks):
        chosen = random_selection(space, np.random.default_rng(trial), leave_one=trial == checks - 1)
        compacted = graph.copy()
        compact_graph(compacted, space, chosen, am.get("shapes"))
        feeds = [sample_feeds(graph, np.random.default_rng(100 + i)) for i in range(2)]
        result = compare(masked_graph(graph, space, chosen), compacted, feeds, 1e-4)
        ok = ok and result.ok
        print(f"    trial {trial}: {chosen.group_count} groups removed; {result}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--check", type=int, default=0, metavar="N", help="random selections to verify per model")
    parser.add_argument("--reasons", action="store_true", help="list why families freeze")
    args = parser.parse_args()
    results = [survey(path, args.check, args.reasons) for path in args.models]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
