"""Sparse training on real data: models/fashion_cnn.onnx on Fashion-MNIST with `onnxprune run`.

Reads Fashion-MNIST from Debian's `dataset-fashion-mnist` package (`apt-get install
dataset-fashion-mnist`: /usr/share/datasets/fashion-mnist/*.gz), writes it as .npz files under
benchmarks/_work/ (inputs scaled to [0, 1] and standardised with the training mean/std), then runs,
with the same architecture, steps, batch, learning-rate schedule and seed:

* the dense baseline: `onnxprune run --target-sparsity 0` (plain SGD with momentum, nothing zeroed),
* HESSO at target group sparsity 0.5 and 0.7 (and DHSPG at 0.5 with --dhspg),

and prints test accuracy (the 10,000 test images), parameters, FLOPs and CPU latency (batch 1, one
thread, median of interleaved runs) of the dense and compact ONNX models, plus training throughput.

With `--engines ort,torch` every run trains once per engine (onnxruntime-training, and the torch
engine executing the same graph), same settings and seed, so their accuracies compare directly.

    python benchmarks/fashion_mnist.py [--epochs 3] [--sparsities 0.5,0.7] [--dhspg] [--engines ort,torch]
        [--no-dense] [--threads N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

from onnxprune import runtime
from onnxprune.app.run import run_model
from onnxprune.ir import load
from onnxprune.train.config import TrainConfig

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "fashion_mnist"
SOURCE = Path("/usr/share/datasets/fashion-mnist")
MODEL = HERE.parent / "models" / "fashion_cnn.onnx"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): big-endian header, then uint8 data."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def prepare() -> tuple[Path, Path]:
    """train.npz and test.npz under benchmarks/_work/fashion_mnist (made once)."""
    train, test = WORK / "train.npz", WORK / "test.npz"
    if train.exists() and test.exists():
        return train, test
    if not SOURCE.is_dir():
        sys.exit(f"{SOURCE} is missing: apt-get install dataset-fashion-mnist")
    WORK.mkdir(parents=True, exist_ok=True)
    x_train = read_idx(SOURCE / "train-images-idx3-ubyte.gz").astype(np.float32) / 255
    x_test = read_idx(SOURCE / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    mean, std = x_train.mean(), x_train.std()
    for path, x, labels in ((train, x_train, "train-labels-idx1-ubyte.gz"), (test, x_test, "t10k-labels-idx1-ubyte.gz")):
        y = read_idx(SOURCE / labels).astype(np.int64)
        np.savez(path, input=((x - mean) / std)[:, None], labels=y)
    return train, test


def round_robin_latency(graphs: dict, seconds: float) -> dict[int, dict[str, float]]:
    """batch -> name -> ms: every model's median latency at batch 1 and 32 (one thread), all timed
    together round robin (so a busy moment of the machine hits all alike) for about `seconds` per batch."""
    found = runtime.measure_latency(graphs, batches=(1, 32), threads=1, budget_s=seconds, min_runs=20)
    return {batch: {name: t.median_ms for name, t in timings.items()} for batch, timings in found.timings.items()}


def measure_latency(rows: list, seconds: float) -> None:
    """Put the dense and compact latency of every run into its report."""
    models = {"dense": load(str(MODEL))}
    models.update({label: load(str(WORK / f"{label.replace(' ', '_').replace('[', '').replace(']', '')}.onnx"))
                   for label, *_ in rows})
    for batch, found in round_robin_latency(models, seconds).items():
        for label, report, *_ in rows:
            report.setdefault("latency_ms", {})[f"batch{batch}"] = {"dense": found["dense"], "compact": found[label]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--sparsities", default="0.5,0.7")
    parser.add_argument("--dhspg", action="store_true", help="also run DHSPG at the first sparsity")
    parser.add_argument("--round-to", type=int, default=8, help="kept channels per layer: multiples of N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-seconds", type=float, default=7.0, help="time spent on each batch size")
    parser.add_argument("--reuse", action="store_true", help="reuse trained models of an earlier run (re-measure latency)")
    parser.add_argument("--engines", default="ort", help="train each run with these engines (ort, torch)")
    parser.add_argument("--no-dense", action="store_true", help="skip the dense baseline (the first run is the reference)")
    parser.add_argument("--threads", type=int, default=0, help="the engines' threads (default: all cores)")
    args = parser.parse_args()
    train, test = prepare()
    runs = [] if args.no_dense else [("dense baseline", "hesso", 0.0)]
    runs += [(f"HESSO {s}", "hesso", float(s)) for s in args.sparsities.split(",")]
    if args.dhspg:
        runs.append((f"DHSPG {runs[-1][2]}", "dhspg", runs[-1][2]))
    engines = args.engines.split(",")
    if engines != ["ort"]:
        runs = [(f"{label} [{engine}]", optimizer, sparsity, engine) for label, optimizer, sparsity in runs
                for engine in engines]
    else:
        runs = [(*run, "ort") for run in runs]
    rows = []
    for label, optimizer, sparsity, engine in runs:
        stem = label.replace(' ', '_').replace('[', '').replace(']', '')
        out = WORK / f"{stem}.onnx"
        saved = WORK / f"{stem}.json"
        if args.reuse and out.exists() and saved.exists():
            report = json.loads(saved.read_text())
            throughput = report.get("throughput", report["steps"] * args.batch_size / report["time_s"]["train"])
            rows.append((label, report, throughput, 0.0))
            continue
        config = TrainConfig(optimizer=optimizer, target_sparsity=sparsity, epochs=args.epochs, lr=args.lr,
                             batch_size=args.batch_size, seed=args.seed, group_divisible=args.round_to,
                             log_every=100, engine=engine, threads=args.threads)
        start = time.perf_counter()
        report = run_model(str(MODEL), str(out), str(train), config, eval_data=str(test), progress=False,
                           latency=False, log=lambda line: print(line, file=sys.stderr))
        wall = time.perf_counter() - start
        report["throughput"] = report["steps"] * args.batch_size / report["time_s"]["train"]
        saved.write_text(json.dumps(report, indent=2))
        rows.append((label, report, report["throughput"], wall))
        print(f"  {label}: done in {wall:.0f}s", file=sys.stderr)
    measure_latency(rows, args.latency_seconds)
    base_acc = rows[0][1]["eval"]["compact"]["accuracy"]  # the dense baseline's, or with --no-dense the first run's
    print(f"Fashion-MNIST, models/fashion_cnn.onnx, {args.epochs} epochs x {rows[0][1]['steps'] // args.epochs} steps, "
          f"batch {args.batch_size}, lr {args.lr} cosine, SGD momentum 0.9, round-to {args.round_to}")
    print(f"{'run':<22} {'top-1':>7} {'vs first':>9} {'params':>9} {'FLOPs':>11} {'FLOPs cut':>9} "
          f"{'batch-1 ms':>16} {'cut':>6} {'ratio':>6} {'batch-32 ms':>16} {'cut':>6} {'ratio':>6} {'train img/s':>11}")
    for label, report, throughput, _ in rows:
        acc = report["eval"]["compact"]["accuracy"]
        flops_cut = 1 - report["flops"]["compact"] / report["flops"]["dense"]
        cells = []
        for batch in ("batch1", "batch32"):
            lat = report["latency_ms"][batch]
            lat_cut = 1 - lat["compact"] / lat["dense"]
            ratio = lat_cut / flops_cut if flops_cut > 0 else float("nan")
            cells.append(f"{lat['dense']:>7.3f} -> {lat['compact']:>5.3f} {lat_cut:>6.1%} {ratio:>6.2f}")
        print(f"{label:<22} {acc:>7.4f} {100 * (acc - base_acc):>+8.2f}p {report['params']['compact']:>9,} "
              f"{report['flops']['compact']:>11,} {flops_cut:>9.1%} {cells[0]} {cells[1]} {throughput:>11.0f}")
    print("top-1 = compact model on the 10,000 test images (the dense run's 'compact' is its own model); "
          "latency = onnxruntime CPU, 1 thread, batch 1 and 32, median of interleaved runs; cut ratio = latency cut / FLOPs cut")


if __name__ == "__main__":
    main()
