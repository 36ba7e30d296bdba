"""HESSO-CRIC against HESSO: test accuracy at the same steps, seed, data order and learning rate, and what
CRIC costs (loss evaluations, batches they ran, steps spent in cycles, wall time).

Two parts:

* Fashion-MNIST (Debian's `dataset-fashion-mnist`, prepared as benchmarks/fashion_mnist.py does) on the
  zoo's fashion_cnn and fashion_resnet at the group sparsities asked for, each setting run with HESSO
  and then HESSO-CRIC back to back (interleaved, one onnxruntime thread each);
* the constructed collapse case (tests/cric_models.py): an MLP on the zoo's digits whose indispensable
  4-wide bottleneck has tiny weights; at 80 % plain HESSO narrows the bottleneck, CRIC keeps it.

    python benchmarks/hesso_cric.py [--epochs 3] [--sparsities 0.7,0.9] [--models fashion_cnn,fashion_resnet]
                                    [--train-size N] [--seeds 0,1,2] [--optimizers hesso,hesso-cric[,hesso-cric-fixed]]
                                    [--no-bottleneck] [--json OUT.json]

`--train-size` trains on the first N training images (the whole test set is still the measure), for
machines too loaded for full epochs; the table says what ran.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.cric_models builds the collapse case

from fashion_mnist import prepare  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from onnxprune.app.run import run_model  # noqa: E402
from onnxprune.train.config import TrainConfig  # noqa: E402

MODELS = HERE.parent / "models"


def one_run(model: Path, train: Path, test: Path, optimizer: str, sparsity: float, epochs: int, seed: int,
            work: Path, lr: float, batch_size: int, steps: int = 0) -> dict:
    """Train, compact and evaluate one setting; return accuracy, widths, CRIC's summary and wall time."""
    fixed = optimizer.endswith("-fixed")  # hesso-cric-fixed: --cric-choice fixed --cric-cycles 3
    config = TrainConfig(optimizer=optimizer.removesuffix("-fixed"), target_sparsity=sparsity, epochs=epochs,
                         steps=steps, lr=lr, batch_size=batch_size, seed=seed, threads=1,
                         **({"cric_choice": "fixed", "cric_cycles": 3} if fixed else {}))
    out = work / f"{model.stem}-{optimizer}-{sparsity}.onnx"
    started = time.perf_counter()
    report = run_model(str(model), str(out), str(train), config, eval_data=str(test), progress=False,
                       latency=False, log=lambda line: None)
    return {"model": model.stem, "optimizer": optimizer, "sparsity": sparsity, "seed": seed, "steps": report["steps"],
            "accuracy": report["eval"]["compact"]["accuracy"], "original": report["eval"]["original"]["accuracy"],
            "params": report["params"]["compact"], "widths": {w["family"]: w["after"] for w in report["widths"]},
            "seconds": time.perf_counter() - started, "cric": report.get("cric")}


def subset(path: Path, size: int, work: Path) -> Path:
    """The first `size` rows of an .npz (the whole file when size is 0)."""
    if not size:
        return path
    out = work / f"{path.stem}-{size}.npz"
    with np.load(path) as archive:
        np.savez(out, **{k: archive[k][:size] for k in archive.files})
    return out


def cost(row: dict) -> str:
    cric = row["cric"]
    if cric is None:
        return ""
    return (f"{cric['evaluations']} evals ({cric['forward_batches']} batches), {len(cric['cycles'])} cycles "
            f"({cric['cycle_steps']} steps), rescued {cric['rescued_count']}")


def table(rows: list[dict]) -> str:
    lines = [f"{'model':16} {'sparsity':>8} {'seed':>4} {'optimizer':18} {'steps':>6} {'test acc':>9} {'params':>9} "
             f"{'time s':>7}  CRIC cost",
             "-" * 110]
    for row in rows:
        lines.append(f"{row['model']:16} {row['sparsity']:8.2f} {row['seed']:4d} {row['optimizer']:18} {row['steps']:6d} "
                     f"{100 * row['accuracy']:8.2f}% {row['params']:9,d} {row['seconds']:7.1f}  {cost(row)}")
    by_setting: dict[tuple, dict] = {}
    for row in rows:
        by_setting.setdefault((row["model"], row["sparsity"], row["seed"]), {})[row["optimizer"]] = row
    lines.append("")
    for (model, sparsity, seed), pair in by_setting.items():
        for other in ("hesso-cric", "hesso-cric-fixed"):
            if {"hesso", other} <= pair.keys():
                a, b = pair["hesso"], pair[other]
                gain, ratio = 100 * (b["accuracy"] - a["accuracy"]), b["seconds"] / a["seconds"]
                lines.append(f"{model} at {sparsity:.2f}, seed {seed}: {other} - hesso = {gain:+.2f} points, "
                             f"time {ratio:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sparsities", default="0.7,0.9")
    parser.add_argument("--models", default="fashion_cnn,fashion_resnet")
    parser.add_argument("--train-size", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", default="0", help="comma list: every setting runs once per seed")
    parser.add_argument("--optimizers", default="hesso,hesso-cric",
                        help="comma list of hesso, hesso-cric (the defaults), hesso-cric-fixed (--cric-choice fixed "
                             "--cric-cycles 3: the reference's cycles and one final set)")
    parser.add_argument("--no-bottleneck", action="store_true")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hesso-cric-") as tmp:
        work = Path(tmp)
        seeds = [int(s) for s in args.seeds.split(",")]
        if not args.no_bottleneck:
            from tests.cric_models import bottleneck_mlp, digits_split

            train, test = digits_split()
            np.savez(work / "digits-train.npz", **train)
            np.savez(work / "digits-test.npz", **test)
            model = bottleneck_mlp(work / "bottleneck_mlp.onnx")
            for seed, optimizer in itertools.product(seeds, args.optimizers.split(",")):
                rows.append(one_run(model, work / "digits-train.npz", work / "digits-test.npz", optimizer, 0.8, 0,
                                    seed, work, lr=0.005, batch_size=32, steps=200))
                print(table(rows[-1:]).splitlines()[2], flush=True)
        if args.models:
            train_file, test_file = prepare()
            train_file = subset(train_file, args.train_size, work)
            for seed, name, sparsity, optimizer in itertools.product(
                    seeds, args.models.split(","), [float(s) for s in args.sparsities.split(",")],
                    args.optimizers.split(",")):
                rows.append(one_run(MODELS / f"{name}.onnx", train_file, test_file, optimizer, sparsity,
                                    args.epochs, seed, work, args.lr, args.batch_size))
                print(table(rows[-1:]).splitlines()[2], flush=True)
    print(f"\nepochs {args.epochs}, train images {args.train_size or 'all'}, batch {args.batch_size}, lr {args.lr}, "
          f"seeds {args.seeds}, one onnxruntime thread; bottleneck: digits MLP, 200 steps, batch 32, lr 0.005\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
