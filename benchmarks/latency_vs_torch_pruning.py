"""Latency after pruning at the same FLOPs cut: onnxprune's default `prune` against Torch-Pruning.

For each torchvision model (random weights, seeded): onnxprune prunes the dynamo export with its
defaults (`prune --ratio R --by flops`, `--round-to auto`); Torch-Pruning prunes the same torch
model with its MagnitudePruner (L2 importance, global ranking, and again with `round_to=16`), its
per-layer ratio bisected until its FLOPs cut (ONNX cost of its own export) matches onnxprune's; each
result is exported and timed with onnxruntime, all three models and the original round-robin in one
`measure_latency` call (1 thread, batch 1 and a larger batch, medians and minima).

    pip install torch-pruning
    python benchmarks/latency_vs_torch_pruning.py [--models resnet18 mobilenet_v2] [--ratio 0.5]
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


def torch_pruning(name: str, folder: Path, per_layer: float, round_to: int | None) -> Path:
    """Torch-Pruning's MagnitudePruner at `per_layer` (global ranking), exported like the original."""
    import torch_pruning as tp

    model = fresh(name)
    example = torch.randn(1, 3, 224, 224)
    pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=2),
                                       pruning_ratio=per_layer, global_pruning=True, round_to=round_to,
                                       ignored_layers=[model.get_submodule(CLASSIFIER[name])])
    pruner.step()
    path = folder / f"{name}_tp{round_to or 1}_{per_layer:.4f}.onnx"
    return export(model.eval(), (torch.randn(2, 3, 224, 224),), path, exporter="dynamo", opset=18)


def matched_torch_pruning(name: str, folder: Path, target_cut: float, base: int, round_to: int | None
                          ) -> tuple[Path, float]:
    """Bisect Torch-Pruning's per-layer ratio until its FLOPs cut is within half a point of `target_cut`."""
    low, high, best = 0.0, 0.95, None
    for _ in range(10):
        middle = (low + high) / 2
        path = torch_pruning(name, folder, middle, round_to)
        cut = 1 - flops(path) / base
        if best is None or abs(cut - target_cut) < abs(best[1] - target_cut):
            best = (path, cut)
        if abs(cut - target_cut) <= 0.005:
            break
        low, high = (middle, high) if cut < target_cut else (low, middle)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["resnet18", "mobilenet_v2"], choices=sorted(CLASSIFIER))
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models:
            original, ours = onnxprune_prune(name, folder, args.ratio)
            base = flops(original)
            cut = 1 - flops(ours) / base
            peers = {f"TP round_to={r or 1}": matched_torch_pruning(name, folder, cut, base, r) for r in (None, 16)}
            graphs = {"original": onnxprune.load(original), "onnxprune": onnxprune.load(ours),
                      **{label: onnxprune.load(path) for label, (path, _) in peers.items()}}
            latency = measure_latency(graphs, threads=1, budget_s=2.0)
            cuts = {"onnxprune": cut, **{label: c for label, (_, c) in peers.items()}}
            rows.append((name, cuts, latency))
            print(f"  measured {name}", file=sys.stderr, flush=True)
    print(f"{'model':<20}{'pruned by':<18}{'FLOPs cut':>10}" + "".join(
        f"{f'b{b} median (min) ms':>26}{'cut':>7}{'ratio':>7}" for b in rows[0][2].timings))
    for name, cuts, latency in rows:
        for label in ["original", *cuts]:
            line = f"{name:<20}{label:<18}{cuts.get(label, 0):>10.1%}"
            for found in latency.timings.values():
                t, o = found[label], found["original"]
                lat_cut = 1 - t.median_ms / o.median_ms
                ratio = lat_cut / cuts[label] if label in cuts and cuts[label] > 0 else float("nan")
                line += f"{t.median_ms:>17.2f} ({t.min_ms:6.2f}){lat_cut:>7.1%}{ratio:>7.2f}"
            print(line)
    print("FLOPs: onnxprune's cost analysis of each ONNX file; latency: onnxruntime CPU, 1 thread, all models "
          "round-robin on the same inputs; ratio = latency cut / FLOPs cut (median)")


if __name__ == "__main__":
    main()
