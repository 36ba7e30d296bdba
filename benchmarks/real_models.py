"""compact ≡ masked on real models we did not write, and which families freeze and why.

For each model: prune-space (with input shapes bound), the frozen families grouped by reason, and
for several seeded random selections (one leaving a single group per family) the verify figures.
With `--train N`, also `onnxprune run` on each (synthetic distillation, N steps, target 0.5, the
inputs bound as given): groups removed, parameters, FLOPs, latency, verify, time.

    python benchmarks/real_models.py                      # rapidocr-onnxruntime's PP-OCR models
    python benchmarks/real_models.py MODEL.onnx=x=1x3x224x224 ...
    python benchmarks/real_models.py --train 60
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from onnxprune.passes.compact import compact_graph, masked_graph
from onnxprune.passes.verify import compare, random_inputs

import onnxprune
from onnxprune.app.run import run_model
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection
from onnxprune.train.config import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from roundtrip_corpus import rapidocr_models  # noqa: E402

RAPIDOCR_SHAPES = {"det": "x=1x3x64x64", "rec": "x=1x3x48x96", "cls": "x=1x3x48x96"}


def selection(space, rng, leave_one: bool) -> Selection:
    pruned = {}
    for family in space.prunable:
        count = family.size - 1 if leave_one else int(rng.integers(0, family.size))
        pruned[family.id] = tuple(sorted(rng.choice(family.size, size=count, replace=False).tolist()))
    return Selection(pruned)


def report(path: Path, binding: str, trials: int) -> bool:
    graph = onnxprune.load(path)
    am = AnalysisManager(graph)
    start = time.perf_counter()
    space = am.get("prune-space", input_shapes=(binding,))
    seconds = time.perf_counter() - start
    types = am.get("shapes", input_shapes=(binding,))
    print(f"\n{path.name}: {len(graph)} ops, {len(space.families)} families, {len(space.prunable)} prunable "
          f"({sum(f.size for f in space.prunable)} groups), prune-space {seconds:.2f} s")
    reasons = collections.Counter(f.reasons[0] for f in space.families if not f.prunable)
    for reason, count in reasons.most_common():
        print(f"  frozen x{count}: {reason[:150]}")
    name, dims = binding.split("=", 1)
    shape = tuple(int(d) for d in dims.split("x"))
    ok = True
    for trial in range(trials):
        rng = np.random.default_rng(trial)
        chosen = selection(space, rng, leave_one=trial == trials - 1)
        try:
            chosen.check(space)
        except onnxprune.UserError as exc:
            print(f"  trial {trial}: selection refused ({exc})")
            continue
        compacted = graph.copy()
        compact_graph(compacted, space, chosen, types)
        feeds = []
        for i in range(2):
            feed = random_inputs(graph, np.random.default_rng(100 + i), 1)
            feed[name] = np.random.default_rng(200 + i).standard_normal(shape).astype(np.float32)
            feeds.append(feed)
        result = compare(masked_graph(graph, space, chosen), compacted, feeds, 1e-4)
        ok = ok and result.ok
        print(f"  trial {trial}: {chosen.group_count} groups removed; {result}")
    return ok


def train(path: Path, binding: str, steps: int) -> bool:
    """`onnxprune run --synthetic 256 --steps N --input-shape BINDING` on `path`; prints the outcome."""
    config = TrainConfig(steps=steps, batch_size=8, lr=0.01, target_sparsity=0.5, loss="distill", threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = run_model(str(path), str(Path(tmp) / "small.onnx"), None, config, synthetic=256, progress=False,
                           log=lambda _: None, input_shapes=(binding,))
    seconds = time.perf_counter() - start
    params, flops, latency = report["params"], report["flops"], report["latency_ms"]
    print(f"  run ({steps} steps, {seconds:.0f} s): {report['groups_removed']} groups removed in "
          f"{len(report['families'])} families, params {params['dense']:,} -> {params['compact']:,}, "
          f"FLOPs {flops['dense']:,} -> {flops['compact']:,} ({1 - flops['compact'] / flops['dense']:.1%} cut), "
          f"latency {latency['summary']}, verify max rel "
          f"{report['verify']['max_rel']:.2g}")
    return report["verify"]["ok"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="MODEL.onnx=INPUT=DIMS (default: rapidocr's models)")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--train", type=int, default=0, metavar="STEPS", help="also train each model this many steps")
    args = parser.parse_args()
    jobs = []
    for spec in args.models:
        path, binding = spec.split("=", 1)
        jobs.append((Path(path), binding))
    if not jobs:
        for path in sorted(rapidocr_models().rglob("*.onnx")):
            jobs.append((path, next(b for k, b in RAPIDOCR_SHAPES.items() if f"_{k}" in path.name)))
    results = [report(path, binding, args.trials) and (not args.train or train(path, binding, args.train))
               for path, binding in jobs]
    print(f"\n{sum(results)} of {len(results)} models: compact == masked on every trial"
          + (" and after training" if args.train else ""))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
