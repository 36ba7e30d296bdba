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
from onnxprune.prepare import prepare
from onnxprune.runtime import measure_latency

ZOO = Path(__file__).resolve().parent.parent / "models"
#: Every convolutional model of the zoo (the rest are MLPs, RNNs and transformers).
CNNS = ["resnet.onnx", "resnet_dynamo.onnx", "resnet50ish.onnx", "fashion_resnet.onnx", "mobilenetv2.onnx",
        "mobilenetv3ish.onnx", "mobilenetv3ish_dynamo.onnx", "vgg.onnx", "fashion_cnn.onnx", "digits_cnn.onnx",
        "efficientnetish.onnx", "regnetish.onnx", "densenet.onnx", "convnextish.onnx", "inceptionish.onnx",
        "shufflenetish.onnx", "unetish.onnx", "yoloish.onnx", "conv1d_audio.onnx"]


def prune(path: Path, ratio: float, setting: str, threads: int, folder: Path):
    """(compact graph, FLOPs cut, what prune said about the rounding or None): `onnxprune prune --by flops`
    itself (select, compact, verify against the masked original, cleanup; its own latency off) at a
    setting "ROUND_TO[:RANK]" (--round-to, and --rank where given)."""
    round_to, _, rank = setting.partition(":")
    out = folder / f"{path.stem}-{round_to}-{rank or 'default'}.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main_cli(["prune", str(path), "-o", str(out), "--ratio", str(ratio), "--by", "flops",
                           "--round-to", round_to, "--latency-threads", str(threads), "--no-latency", "--no-report"]
                          + (["--rank", rank] if rank else []))
    if status:
        raise SystemExit(f"prune {path} {setting} failed ({status})")
    lines = printed.getvalue().splitlines()
    said = next((line.split(None, 1)[1] for line in lines if line.startswith("round-to")), None)
    before, after = (prepared_flops(p) for p in (path, out))
    return onnxprune.load(out), 1 - after / before, said


def prepared_flops(path: Path) -> float:
    """The model's FLOPs as `analyze` and `prune` count them: after `prepare` folds constant-computed
    values (a raw unetish counts 12.7 M, since a shape computed by a Concat of constants hides the sizes
    after it; prepared, 15.1 M, which is what prune's target is a share of)."""
    graph = onnxprune.load(path)
    prepare(graph)
    return AnalysisManager(graph).get("cost").flops


def narrowest_model(path: Path, round_to: int):
    """The model `widths.narrowest` leaves (every prunable family cut as far as select may, at
    --max-family-ratio 0.9, kept counts multiples of `round_to`), compacted."""
    from onnxprune.widths import narrowest

    graph = onnxprune.load(path)
    prepare(graph)
    return compacted(graph, narrowest(AnalysisManager(graph).get("prune-space"), 0.9, round_to))


def compacted(graph, selection):
    """`graph` compacted to `selection` (compact, cleanup), in place; returned."""
    from onnxprune.passmanager import REGISTRY, PassManager

    am = AnalysisManager(graph)
    am.provide(selection)
    PassManager([REGISTRY.get("compact")(), REGISTRY.get("cleanup")()]).run(graph, am)
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (timing and the width table)")
    parser.add_argument("--seconds", type=float, default=1.0, help="latency: about this long per batch size")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--settings", nargs="+", default=["1", "auto"], metavar="ROUND_TO[:RANK]",
                        help="prune settings to compare, timed together with the original: --round-to, and --rank "
                             "after a colon (default: 1 auto)")
    parser.add_argument("--auto-only", action="store_true", help="only the default setting (same as --settings auto)")
    parser.add_argument("--narrowest", action="store_true",
                        help="also time the narrowest model pruning can make (every family cut to --max-family-ratio "
                             "0.9, kept counts multiples of the first setting's rounding): the most latency any "
                             "selection can remove")
    args = parser.parse_args()
    settings = ["auto"] if args.auto_only else args.settings
    rows = []
    print(f"| model | setting | FLOPs cut | latency cut {' | latency cut '.join(f'b{b}' for b in args.batches)} "
          f"| ratio (of minima) | ms original -> compact {' | ms '.join(f'b{b}' for b in args.batches)} |", flush=True)
    print("|---" * (4 + 2 * len(args.batches)) + "|", flush=True)
    folder = tempfile.TemporaryDirectory(prefix="default-widths-")
    for path in args.models or [ZOO / name for name in CNNS]:
        original = onnxprune.load(path)
        start = time.perf_counter()
        pruned = {setting: prune(path, args.ratio, setting, args.threads, Path(folder.name)) for setting in settings}
        seconds = time.perf_counter() - start
        extra = {}
        if args.narrowest:
            first = next(iter(pruned.values()))[2]
            extra["narrowest"] = narrowest_model(path, int(first.split()[0].rstrip(",")) if first else 1)
        latency = measure_latency({"original": original, **{k: v[0] for k, v in pruned.items()}, **extra},
                                  batches=tuple(args.batches), threads=args.threads, budget_s=args.seconds,
                                  min_runs=5)
        for setting, (_, cut, said) in pruned.items():
            chosen = said.split()[0].rstrip(",") if said else setting.split(":")[0]
            label = f"{setting} ({chosen})" if setting.startswith("auto") else setting
            cuts, cuts_min, ms = {}, {}, {}
            for batch, found in latency.timings.items():
                a, b = found["original"].median_ms, found[setting].median_ms
                cuts[batch] = 1 - b / a
                cuts_min[batch] = 1 - found[setting].min_ms / found["original"].min_ms
                ms[batch] = f"{a:.3g} -> {b:.3g}"
            ratio = min(cuts.values()) / cut if cut > 0 else float("nan")
            ratio_min = min(cuts_min.values()) / cut if cut > 0 else float("nan")
            rows.append({"model": path.name, "setting": label, "flops_cut": round(cut, 4),
                         "latency_cut": {b: round(c, 4) for b, c in cuts.items()}, "ratio": round(ratio, 3),
                         "ratio_of_minima": round(ratio_min, 3), "ms": ms, "prune_said": said,
                         "prune_seconds": round(seconds, 2)})
            print(f"| {path.name} | {label} | {100 * cut:.2f}% | "
                  + " | ".join(f"{100 * cuts[b]:+.1f}%" if b in cuts else "-" for b in args.batches)
                  + f" | {ratio:.2f} ({ratio_min:.2f}){' SLOWER' if min(cuts.values(), default=0) < 0 else ''} | "
                  + " | ".join(ms.get(b, "-") for b in args.batches) + " |", flush=True)
        if extra:
            found = {b: 1 - t["narrowest"].median_ms / t["original"].median_ms for b, t in latency.timings.items()}
            print(f"| {path.name} | narrowest | - | " + " | ".join(f"{100 * found[b]:+.1f}%" for b in args.batches)
                  + " | - | " + " | ".join(f"{latency.timings[b]['original'].median_ms:.3g} -> "
                                           f"{latency.timings[b]['narrowest'].median_ms:.3g}" for b in args.batches)
                  + " |", flush=True)
            rows.append({"model": path.name, "setting": "narrowest",
                         "latency_cut": {b: round(c, 4) for b, c in found.items()}})
        if latency.notes:
            print(f"  ({path.name}: {'; '.join(latency.notes)})", flush=True)
        for setting, (_, _, said) in pruned.items():
            if said:
                print(f"  ({path.name} {setting}: round-to {said})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
