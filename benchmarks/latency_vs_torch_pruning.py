"""Latency after pruning at the same FLOPs cut: onnxprune's default `prune` against Torch-Pruning.

For each torchvision model (random weights, seeded): onnxprune prunes the dynamo export with its
defaults (`prune --ratio R --by flops`, `--round-to auto`); Torch-Pruning prunes the same torch
model with its MagnitudePruner (L2 importance, global ranking, and again with `round_to=16`), its
per-layer ratio bisected until its multiply-add cut (Torch-Pruning's own counter, on the torch model)
matches onnxprune's FLOPs cut; each result is exported the same way and its FLOPs cut reported by the
same ONNX cost analysis; all three models and the original are timed round-robin in one
`measure_latency` call (1 thread, batch 1 and 32 by default, medians and minima).

    pip install torch-pruning
    OMP_WAIT_POLICY=PASSIVE taskset -c 1 python benchmarks/latency_vs_torch_pruning.py \
        [--models resnet18 mobilenet_v2] [--ratio 0.5] [--batches 1 32]

The CNNs of models/ (onnxprune only; Torch-Pruning has no torch model for them):
`benchmarks/default_widths.py --auto-only`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch's spinning threads would disturb the timing

import torch  # noqa: E402

import onnxprune  # noqa: E402
from onnxprune.passmanager import AnalysisManager  # noqa: E402
from onnxprune.runtime import measure_latency  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "models"))
from exports import export, import_torchvision  # noqa: E402

CLASSIFIER = {"resnet18": "fc", "resnet50": "fc", "mobilenet_v2": "classifier.1", "efficientnet_b0": "classifier.1",
              "regnet_y_400mf": "fc", "mobilenet_v3_small": "classifier.3"}


def fresh(name: str):
    """The seeded torchvision model in eval mode."""
    torch.manual_seed(0)
    return import_torchvision().models.get_model(name, weights=None).eval()


def flops(path: Path) -> int:
    """FLOPs per sample of an ONNX file, by onnxprune's cost analysis (the same count for every model)."""
    return AnalysisManager(onnxprune.load(path)).get("cost").flops


def onnxprune_prune(name: str, folder: Path, ratio: float) -> tuple[Path, Path]:
    """The original dynamo export and onnxprune's default prune of it."""
    original = export(fresh(name), (torch.randn(2, 3, 224, 224),), folder / f"{name}.onnx", exporter="dynamo",
                      opset=18)
    pruned = folder / f"{name}_onnxprune.onnx"
    subprocess.run([sys.executable, "-m", "onnxprune", "prune", str(original), "--ratio", str(ratio), "--by", "flops",
                    "-o", str(pruned), "--no-latency", "--no-report"], check=True, capture_output=True)
    return original, pruned


def pruned_torch_model(name: str, per_layer: float, round_to: int | None):
    """Torch-Pruning's MagnitudePruner at `per_layer` (global ranking, L2), on a fresh seeded model."""
    import torch_pruning as tp

    model = fresh(name)
    example = torch.randn(1, 3, 224, 224)
    pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=2),
                                       pruning_ratio=per_layer, global_pruning=True, round_to=round_to,
                                       ignored_layers=[model.get_submodule(CLASSIFIER[name])])
    pruner.step()
    return model.eval()


def macs(model) -> float:
    """Multiply-adds per sample by Torch-Pruning's own counter."""
    import torch_pruning as tp

    return float(tp.utils.count_ops_and_params(model, torch.randn(1, 3, 224, 224))[0])


def matched_torch_pruning(name: str, folder: Path, target_cut: float, base: int, round_to: int | None
                          ) -> tuple[Path, float]:
    """Bisect Torch-Pruning's per-layer ratio until its multiply-add cut is within half a point of
    `target_cut` (counted on the torch model: exporting every step took minutes), then export the
    closest and report its FLOPs cut by the ONNX cost analysis."""
    full = macs(fresh(name))
    low, high, best = 0.0, 0.95, None
    for _ in range(12):
        middle = (low + high) / 2
        cut = 1 - macs(pruned_torch_model(name, middle, round_to)) / full
        if best is None or abs(cut - target_cut) < abs(best[1] - target_cut):
            best = (middle, cut)
        if abs(cut - target_cut) <= 0.005:
            break
        low, high = (middle, high) if cut < target_cut else (low, middle)
    path = folder / f"{name}_tp{round_to or 1}_{best[0]:.4f}.onnx"
    export(pruned_torch_model(name, best[0], round_to), (torch.randn(2, 3, 224, 224),), path, exporter="dynamo",
           opset=18)
    return path, 1 - flops(path) / base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(CLASSIFIER), choices=sorted(CLASSIFIER))
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seconds", type=float, default=2.0, help="about this long per batch size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'model':<20}{'pruned by':<18}{'FLOPs cut':>10}" + "".join(
        f"{f'b{b} median (min) ms':>26}{'cut':>7}{'ratio':>7}" for b in args.batches), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models:
            original, ours = onnxprune_prune(name, folder, args.ratio)
            base = flops(original)
            cut = 1 - flops(ours) / base
            peers = {f"TP round_to={r or 1}": matched_torch_pruning(name, folder, cut, base, r) for r in (None, 16)}
            graphs = {"original": onnxprune.load(original), "onnxprune": onnxprune.load(ours),
                      **{label: onnxprune.load(path) for label, (path, _) in peers.items()}}
            latency = measure_latency(graphs, batches=tuple(args.batches), threads=1, budget_s=args.seconds)
            cuts = {"onnxprune": cut, **{label: c for label, (_, c) in peers.items()}}
            for label in ["original", *cuts]:
                line = f"{name:<20}{label:<18}{cuts.get(label, 0):>10.1%}"
                for found in latency.timings.values():
                    t, o = found[label], found["original"]
                    lat_cut = 1 - t.median_ms / o.median_ms
                    ratio = lat_cut / cuts[label] if label in cuts and cuts[label] > 0 else float("nan")
                    line += f"{t.median_ms:>17.2f} ({t.min_ms:6.2f}){lat_cut:>7.1%}{ratio:>7.2f}"
                print(line, flush=True)
    print("FLOPs: onnxprune's cost analysis of each ONNX file; latency: onnxruntime CPU, 1 thread, all models "
          "round-robin on the same inputs; ratio = latency cut / FLOPs cut (median)")


if __name__ == "__main__":
    main()
