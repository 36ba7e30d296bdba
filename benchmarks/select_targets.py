"""How close `select --by flops|params` comes to its target, and whether the compact model is faster.

For each model: `select{ratio=R,by=B}` then compact and cleanup; the share of FLOPs (or parameters)
the compact model lost, measured by `cost` on it, against R; whether the figure select reported is
the compact model's own; and, with `--latency`, the compact model against the original with
onnxruntime on the CPU (runtime.compare_latency: interleaved runs, batch 1 and a larger batch, one
thread), at `--round-to 1` and `8`.

    python benchmarks/select_targets.py                        # the CNNs of models/
    python models/exports.py OUT --only resnet18 resnet50 mobilenet_v2 mobilenet_v3_small \\
        efficientnet_b0 regnet_y_400mf --exporter dynamo --opset 18
    python benchmarks/select_targets.py OUT/*.onnx --latency
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import onnxprune
from onnxprune.facts import Outcome
from onnxprune.passmanager import REGISTRY, AnalysisManager, PassManager
from onnxprune.runtime import compare_latency

ZOO = Path(__file__).resolve().parent.parent / "models"
CNNS = ["resnet.onnx", "resnet50ish.onnx", "mobilenetv2.onnx", "vgg.onnx", "fashion_cnn.onnx", "efficientnetish.onnx",
        "regnetish.onnx", "densenet.onnx", "mobilenetv3ish.onnx", "digits_cnn.onnx"]


def prune(path: Path, ratio: float, by: str, round_to: int = 1):
    """(original graph, compact graph, achieved share, select's own figure equals the compact cost, seconds
    in select)."""
    graph = onnxprune.load(path)
    original = graph.copy()
    am = AnalysisManager(graph)
    before = am.get("cost")
    am.get("prune-space")
    start = time.perf_counter()
    PassManager([REGISTRY.get("select")(ratio=ratio, by=by, round_to=round_to)]).run(graph, am)
    seconds = time.perf_counter() - start
    PassManager("compact,cleanup").run(graph, am)
    after = AnalysisManager(graph).get("cost")
    key = "flops" if by == "flops" else "parameters"
    removed = getattr(before, key) - getattr(after, key)
    return original, graph, removed / getattr(before, key), am.fact(Outcome).removed == removed, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--latency", action="store_true", help="also time compact against original")
    parser.add_argument("--seconds", type=float, default=3.0, help="latency: time spent per batch size")
    args = parser.parse_args()
    for path in args.models or [ZOO / name for name in CNNS]:
        for by in ("flops", "params"):
            _, _, share, same, seconds = prune(path, args.ratio, by)
            print(f"{path.name:36s} by {by:6s} target {args.ratio:.3f} reached {share:.4f} "
                  f"({'select reports it exactly' if same else 'SELECT REPORTED ANOTHER FIGURE'}; select {seconds:.2f} s)",
                  flush=True)
        if args.latency:
            for round_to in (1, 8):
                original, compact, share, _, _ = prune(path, args.ratio, "flops", round_to)
                latency = compare_latency(original, compact, budget_s=args.seconds)
                slower = latency.not_faster("compact", "original")
                print(f"{path.name:36s} round-to {round_to}: FLOPs -{100 * share:.2f}%; "
                      f"{latency.describe('original', 'compact')}"
                      + (f"; NOT FASTER at batch {slower}" if slower else ""), flush=True)


if __name__ == "__main__":
    main()
