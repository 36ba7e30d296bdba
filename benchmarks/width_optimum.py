"""How fast can any selection at a FLOPs cut be? An exhaustive check of the latency bar on small models.

For a model with few prunable families, every combination of kept widths (multiples of --step, at most
--max-family-ratio of a family removed, as `select` allows) is compacted and its FLOPs counted on the
prepared graph, as `prune` counts them. Those within --tolerance of the --ratio FLOPs cut are timed, with
the original and the default `prune --ratio R --by flops`, interleaved (`runtime.measure_latency`,
onnxruntime CPU, all graph optimisations, --threads threads) at batch 1 and 32. Prints the best
selections by ratio = min(latency cut at batch 1, at batch 32) / FLOPs cut (issue 11's bar is 0.8)
and where the default stands among them. Selections are channel widths only: which channels of a
family go does not change the compact model's shape, so the timing holds for every choice of them.

    OMP_WAIT_POLICY=PASSIVE taskset -c 1 python benchmarks/width_optimum.py models/digits_cnn.onnx --step 2
"""

from __future__ import annotations

import argparse
import itertools
import random
import tempfile
from pathlib import Path

from default_widths import compacted, prune  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

import onnxprune
from onnxprune.passmanager import AnalysisManager
from onnxprune.prepare import prepare
from onnxprune.runtime import measure_latency
from onnxprune.space import Selection


def widths_at(graph, kept: dict[int, tuple[int, int]]):
    """A copy of `graph` (prepared) compacted to family -> (kept, size) channels (the last ones removed)."""
    return compacted(graph.copy(), Selection({f: tuple(range(k, size)) for f, (k, size) in kept.items() if k < size}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--ratio", type=float, default=0.5, help="the FLOPs cut asked for (default 0.5)")
    parser.add_argument("--step", type=int, default=2, help="kept widths are multiples of this (default 2)")
    parser.add_argument("--tolerance", type=float, default=0.015, help="FLOPs cut within this of --ratio")
    parser.add_argument("--max-family-ratio", type=float, default=0.9)
    parser.add_argument("--sample", type=int, default=40, help="time at most this many selections (random)")
    parser.add_argument("--max-combinations", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.5, help="timing budget per batch size")
    args = parser.parse_args()

    graph = onnxprune.load(args.model)
    prepare(graph)
    space = AnalysisManager(graph).get("prune-space")
    base = AnalysisManager(graph).get("cost").flops
    families = [(f.id, f.size) for f in space.prunable if f.size > 1]
    choices = [[k for k in range(args.step, size + 1, args.step) if k >= size * (1 - args.max_family_ratio)] or [size]
               for _, size in families]
    total = 1
    for c in choices:
        total *= len(c)
    if total > args.max_combinations:
        raise SystemExit(f"{args.model}: {total} width combinations over {len(families)} families; raise --step "
                         f"or --max-combinations")
    hits = []
    for kept in itertools.product(*choices):
        compact = widths_at(graph, {f: (k, size) for (f, size), k in zip(families, kept)})
        cut = 1 - AnalysisManager(compact).get("cost").flops / base
        if abs(cut - args.ratio) <= args.tolerance:
            hits.append((kept, cut, compact))
    random.Random(0).shuffle(hits)
    timed = hits[:args.sample]
    with tempfile.TemporaryDirectory() as tmp:
        default, default_cut, _ = prune(args.model, args.ratio, "auto", args.threads, Path(tmp))
    graphs = {"original": graph, "default": default, **{str(k): g for k, _, g in timed}}
    timings = measure_latency(graphs, threads=args.threads, budget_s=args.seconds).timings

    def cuts(name: str) -> list[float]:
        return [1 - timings[b][name].median_ms / timings[b]["original"].median_ms for b in sorted(timings)]
    rows = [(min(cuts(str(k))) / cut, str(k), cut, cuts(str(k))) for k, cut, _ in timed]
    rows.append((min(cuts("default")) / default_cut, "default prune", default_cut, cuts("default")))
    rows.sort(reverse=True)
    print(f"{args.model.name}: families {families}; {total} width combinations at step {args.step}, {len(hits)} "
          f"within {args.tolerance:.1%} of a {args.ratio:.0%} FLOPs cut, {len(timed)} timed with the default "
          f"prune, batches {sorted(timings)}, {args.threads} thread(s), medians")
    print(f"{'ratio':>6}  {'kept widths':24} {'FLOPs cut':>9}  latency cuts")
    for ratio, name, cut, c in rows[:10] + ([r for r in rows[10:] if r[1] == "default prune"]):
        print(f"{ratio:6.2f}  {name:24} {cut:9.1%}  {'  '.join(f'{x:+.1%}' for x in c)}")
    rank = next(i for i, r in enumerate(rows) if r[1] == "default prune")
    print(f"best ratio {rows[0][0]:.2f}; the default ranks {rank + 1} of {len(rows)}")


if __name__ == "__main__":
    main()
