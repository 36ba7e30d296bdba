"""Erasing whole blocks while training: models/fashion_resnet.onnx on Fashion-MNIST.

Same data preparation as benchmarks/fashion_mnist.py (Debian's dataset-fashion-mnist). With the same
steps, batch, schedule and seed it runs the dense baseline (nothing zeroed) and HESSO erasing a share of
the residual blocks (`--target-erase`, optionally with channel pruning `--target-sparsity`), then
prints test accuracy, depth (nodes, Conv ops), parameters, FLOPs and CPU latency (1 thread, batch 1 and
32, round-robin medians) of the dense and compact ONNX models.

    python benchmarks/fashion_erase.py [--epochs 1] [--target-erase 0.5] [--target-sparsity 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from onnxprune.app.run import run_model
from onnxprune.ir import load
from onnxprune.train.config import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fashion_mnist import WORK, prepare, round_robin_latency

MODEL = Path(__file__).resolve().parent.parent / "models" / "fashion_resnet.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--target-erase", type=float, default=0.5)
    parser.add_argument("--target-sparsity", type=float, default=0.0)
    parser.add_argument("--latency-seconds", type=float, default=7.0, help="time spent on each batch size")
    parser.add_argument("--reuse", action="store_true", help="reuse trained models of an earlier run")
    args = parser.parse_args()
    train, test = prepare()
    runs = [("resnet dense", 0.0, 0.0), (f"resnet erase {args.target_erase}", args.target_erase, args.target_sparsity)]
    rows = []
    for label, erase, sparsity in runs:
        out = WORK / f"{label.replace(' ', '_')}.onnx"
        saved = WORK / f"{label.replace(' ', '_')}.json"
        if args.reuse and out.exists() and saved.exists():
            rows.append((label, json.loads(saved.read_text()), out))
            continue
        config = TrainConfig(target_sparsity=sparsity, target_erase=erase, epochs=args.epochs, lr=args.lr,
                             batch_size=args.batch_size, group_divisible=16, log_every=100)
        report = run_model(str(MODEL), str(out), str(train), config, eval_data=str(test), progress=False,
                           latency=False)
        saved.write_text(json.dumps(report, indent=2))
        rows.append((label, report, out))
        print(f"  {label}: trained in {report['time_s']['train']:.0f}s", file=sys.stderr)
    graphs = {"dense": load(str(MODEL)), **{label: load(str(out)) for label, _, out in rows}}
    latency = round_robin_latency(graphs, args.latency_seconds)
    print(f"Fashion-MNIST, models/fashion_resnet.onnx, {args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr} "
          f"cosine, SGD momentum 0.9; test top-1 on 10,000 images; latency 1 thread, ms")
    print(f"{'run':<22} {'top-1':>7} {'erased':>7} {'nodes':>6} {'convs':>6} {'params':>8} {'FLOPs':>11} "
          f"{'batch-1':>8} {'batch-32':>9}")
    for label, report, _ in [("dense", None, MODEL)] + rows:
        graph = graphs[label]
        convs = sum(1 for op in graph.ops() if op.op_type == "Conv")
        if report is None:
            continue
        print(f"{label:<22} {report['eval']['compact']['accuracy']:>7.4f} {len(report['regions_erased']):>7} "
              f"{len(graph):>6} {convs:>6} {report['params']['compact']:>8,} {report['flops']['compact']:>11,} "
              f"{latency[1][label]:>8.3f} {latency[32][label]:>9.3f}")
    print(f"(original model: {len(graphs['dense'])} nodes, latency {latency[1]['dense']:.3f} / "
          f"{latency[32]['dense']:.3f} ms)")


if __name__ == "__main__":
    main()
