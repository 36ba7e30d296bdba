"""Default widths against arbitrary ones: does `prune --ratio R --by flops` make CNNs faster in practice?

For each model: `onnxprune prune --ratio R --by flops` (select, compact, verify against the masked
original, cleanup) at `--round-to 1` (kept counts as the ranking leaves them: "before") and at the
default `--round-to auto` (the multiple the measured width table says is fast: `onnxprune.widths`;
its table in $ONNXPRUNE_CACHE or ~/.cache/onnxprune), then the
original and both compact models timed together with `runtime.measure_latency` (interleaved
round robin, onnxruntime CPU, all graph optimisations, 1 thread by default) at batch 1 and 32.
Prints per model and rounding: the FLOPs cut, the latency cut at each batch (1 - compact/original,
medians), the ratio latency cut / FLOPs cut (the bar is 0.8), and the rounding auto chose.

    python models/exports.py OUT --only resnet18 resnet50 mobilenet_v2 mobilenet_v3_small \\
        efficientnet_b0 regnet_y_400mf --exporter dynamo --opset 18
    nice -n 5 python benchmarks/default_widths.py                     # the CNNs of models/
    nice -n 5 python benchmarks/default_widths.py OUT/*.onnx --seconds 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import onnxprune
from onnxprune.cli import main as main_cli
from onnxprune.passmanager import AnalysisManager
from onnxprune.runtime import measure_latency

ZOO = Path(__file__).resolve().parent.parent / "models"
#: Every convolutional model of the zoo (the rest are MLPs, RNNs and transformers).
CNNS = ["resnet.onnx", "resnet_dynamo.onnx", "resnet50ish.onnx", "fashion_resnet.onnx", "mobilenetv2.onnx",
        "mobilenetv3ish.onnx", "mobilenetv3ish_dynamo.onnx", "vgg.onnx", "fashion_cnn.onnx", "digits_cnn.onnx",
        "efficientnetish.onnx", "regnetish.onnx", "densenet.onnx", "convnextish.onnx", "inceptionish.onnx",
        "shufflenetish.onnx", "unetish.onnx", "yoloish.onnx", "conv1d_audio.onnx"]


def prune(path: Path, ratio: float, round_to: str, threads: int, folder: Path):
    """(compact graph, FLOPs cut, what prune said about the rounding or None): `onnxprune prune --by flops`
    itself (select, compact, verify against the masked original, cleanup; its own latency off)."""
    out = folder / f"{path.stem}-{round_to}.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main_cli(["prune", str(path), "-o", str(out), "--ratio", str(ratio), "--by", "flops",
                           "--round-to", round_to, "--latency-threads", str(threads), "--no-latency"])
    if status:
        raise SystemExit(f"prune {path} --round-to {round_to} failed ({status})")
    lines = printed.getvalue().splitlines()
    said = next((line.split(None, 1)[1] for line in lines if line.startswith("round-to")), None)
    before, after = (AnalysisManager(onnxprune.load(p)).get("cost").flops for p in (path, out))
    return onnxprune.load(out), 1 - after / before, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (timing and the width table)")
    parser.add_argument("--seconds", type=float, default=1.0, help="latency: about this long per batch size")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    rows = []
    print(f"| model | round-to | FLOPs cut | latency cut {' | latency cut '.join(f'b{b}' for b in args.batches)} "
          f"| ratio (min) | ms original -> compact {' | ms '.join(f'b{b}' for b in args.batches)} |", flush=True)
    print("|---" * (4 + 2 * len(args.batches)) + "|", flush=True)
    folder = tempfile.TemporaryDirectory(prefix="default-widths-")
    for path in args.models or [ZOO / name for name in CNNS]:
        original = onnxprune.load(path)
        start = time.perf_counter()
        arbitrary, cut_1, _ = prune(path, args.ratio, "1", args.threads, Path(folder.name))
        default, cut_auto, said = prune(path, args.ratio, "auto", args.threads, Path(folder.name))
        seconds = time.perf_counter() - start
        chosen = said.split()[0].rstrip(",") if said else "1"
        latency = measure_latency({"original": original, "round-to 1": arbitrary, "auto": default},
                                  batches=tuple(args.batches), threads=args.threads, budget_s=args.seconds,
                                  min_runs=5)
        for label, cut, name in (("1", cut_1, "round-to 1"), (f"auto: {chosen}", cut_auto, "auto")):
            cuts, ms = {}, {}
            for batch, found in latency.timings.items():
                a, b = found["original"].median_ms, found[name].median_ms
                cuts[batch] = 1 - b / a
                ms[batch] = f"{a:.3g} -> {b:.3g}"
            ratio = min(cuts.values()) / cut if cut > 0 else float("nan")
            rows.append({"model": path.name, "round_to": label, "flops_cut": round(cut, 4),
                         "latency_cut": {b: round(c, 4) for b, c in cuts.items()}, "ratio": round(ratio, 3),
                         "ms": ms, "prune_said": said if name == "auto" else None,
                         "prune_seconds": round(seconds, 2)})
            print(f"| {path.name} | {label} | {100 * cut:.2f}% | "
                  + " | ".join(f"{100 * cuts[b]:+.1f}%" if b in cuts else "-" for b in args.batches)
                  + f" | {ratio:.2f}{' SLOWER' if min(cuts.values(), default=0) < 0 else ''} | "
                  + " | ".join(ms.get(b, "-") for b in args.batches) + " |", flush=True)
        if latency.notes:
            print(f"  ({path.name}: {'; '.join(latency.notes)})", flush=True)
        print(f"  ({path.name}: round-to {said})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
