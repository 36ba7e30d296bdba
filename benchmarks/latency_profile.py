"""Where a model's time goes, per op type, before and after pruning: onnxruntime's own profiler.

Runs each model (the original first, then its pruned versions) at one batch size on 1 thread with
every graph optimisation and onnxruntime's profiler on, and prints, per op type of the optimised
graph (fused Conv, NCHWc Conv, ReorderInput, Mul, GlobalAveragePool, ...), the summed kernel time
per run (median over runs) and its share, plus what no kernel accounts for (session overhead: the
wall time of a run minus its kernels). It shows which ops a FLOPs cut does not shrink.

    taskset -c 1 python benchmarks/latency_profile.py ORIGINAL.onnx PRUNED.onnx [--batch 1] [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import onnxprune
from onnxprune.runtime import _batched, onnxruntime, random_inputs


def profile(path: Path, batch: int, runs: int, threads: int) -> tuple[dict[str, float], float]:
    """Per op type, the median over `runs` of its summed kernel time per run (ms); and the median wall
    time of a run (ms)."""
    ort = onnxruntime()
    graph = onnxprune.load(path)
    feeds = _batched(graph, random_inputs(graph, np.random.default_rng(0), 1), batch) or \
        random_inputs(graph, np.random.default_rng(0), batch)
    with tempfile.TemporaryDirectory(prefix="latency-profile-") as folder:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "profile")
        # not runtime.inference_session: profiling options (enable_profiling, its file prefix) are this script's alone
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(3):
            session.run(None, feeds)
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feeds)
            walls.append(1000 * (time.perf_counter() - start))
        events = json.loads(Path(session.end_profiling()).read_text())
    per_run: list[dict[str, float]] = []
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            per_run.append(defaultdict(float))
        elif event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time") and per_run:
            op = event.get("args", {}).get("op_name", "?")
            per_run[-1][op] += event["dur"] / 1000.0
    per_run = per_run[-runs:]  # model_run is logged at its end: the kernels before it belong to it
    ops = sorted({op for run in per_run for op in run})
    return {op: float(np.median([run.get(op, 0.0) for run in per_run])) for op in ops}, float(np.median(walls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    found = [profile(path, args.batch, args.runs, args.threads) for path in args.models]
    ops = sorted({op for per_op, _ in found for op in per_op}, key=lambda op: -found[0][0].get(op, 0.0))
    print(f"batch {args.batch}, {args.threads} thread(s), median of {args.runs} runs; ms per run (share of wall)")
    print(f"{'op type':<28}" + "".join(f"{path.stem[:24]:>26}" for path in args.models))
    for op in ops:
        print(f"{op:<28}" + "".join(f"{per_op.get(op, 0.0):>17.4f} ({100 * per_op.get(op, 0.0) / wall:4.1f}%)"
                                    for per_op, wall in found))
    print(f"{'(no kernel: overhead)':<28}" + "".join(
        f"{wall - sum(per_op.values()):>17.4f} ({100 * (wall - sum(per_op.values())) / wall:4.1f}%)"
        for per_op, wall in found))
    print(f"{'wall':<28}" + "".join(f"{wall:>17.4f} {'':7}" for _, wall in found))


if __name__ == "__main__":
    main()
