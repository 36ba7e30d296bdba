"""How long a command takes to start, and where the time goes: interpreter start, imports (by top-level
package) and the command's own work.

    python benchmarks/startup.py                        # analyze and prune of models/digits_cnn.onnx
    python benchmarks/startup.py --model resnet18.onnx  # and analyze/prune of another model
    python benchmarks/startup.py --json                 # one row per command, for comparing runs

The prune rows: without latency and report (the pipeline alone), without latency (plus the HTML
report, which imports matplotlib), and the default (plus timing both models with onnxruntime).

Each command runs in a fresh interpreter (`python -m onnxprune ...`) `--repeat` times; the wall time is
the fastest run (the one least disturbed by the rest of the machine). One more run under
`python -X importtime` attributes import time to top-level packages (its own overhead inflates the
figures a little, so they are a breakdown, not a second wall time). "work" is the wall time less the
interpreter's start and the imports: what the command itself spent loading, analysing, rewriting,
verifying and timing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Packages whose import is worth naming; the rest is "other".
NAMED = ("numpy", "onnx", "networkx", "onnxruntime", "torch", "sympy", "matplotlib", "jsonschema", "google",
         "onnxprune")


def wall(argv: list[str], repeat: int) -> float:
    """The fastest of `repeat` runs of `argv`, in seconds; a failing command stops the benchmark."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return best


def import_times(argv: list[str]) -> dict[str, float]:
    """Seconds of import per top-level package, from one run under -X importtime: each module's own
    ("self") time is charged to its top-level package, so the figures add up to the whole import time
    and a package is not charged for the dependencies it pulls in."""
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True)
    found: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            root = match[2].split(".")[0]
            found[root if root in NAMED else "other"] += int(match[1]) / 1e6
    return dict(found)


def measure(label: str, args: list[str], repeat: int, start_s: float) -> dict:
    argv = [sys.executable, "-m", "onnxprune", *args]
    seconds = wall(argv, repeat)
    imports = import_times(argv)
    total_imports = sum(imports.values())
    return {"command": label, "wall_s": round(seconds, 3), "interpreter_s": round(start_s, 3),
            "imports_s": {k: round(v, 3) for k, v in sorted(imports.items(), key=lambda kv: -kv[1]) if v >= 0.005},
            "work_s": round(max(seconds - start_s - total_imports, 0.0), 3),
            "heavy": [name for name in ("torch", "sympy", "matplotlib") if imports.get(name, 0) > 0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="also time analyze/prune of this model")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the fastest counts (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON row per command")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start_s = wall([sys.executable, "-c", "pass"], args.repeat)
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnxprune-startup-") as folder:
        for model in [str(ROOT / "models" / "digits_cnn.onnx"), *args.model]:
            name = Path(model).stem
            out = str(Path(folder) / f"{name}.onnx")
            rows.append(measure(f"analyze {name}", ["analyze", model], args.repeat, start_s))
            rows.append(measure(f"prune {name} --no-latency --no-report",
                                ["prune", model, "-o", out, "--ratio", "0.5", "--no-latency", "--no-report"],
                                args.repeat, start_s))
            rows.append(measure(f"prune {name} --no-latency", ["prune", model, "-o", out, "--ratio", "0.5",
                                                              "--no-latency"], args.repeat, start_s))
            rows.append(measure(f"prune {name}", ["prune", model, "-o", out, "--ratio", "0.5"], args.repeat, start_s))
            rows.append(measure(f"report {name}", ["report", str(Path(folder) / f"{name}.report.json")],
                                args.repeat, start_s))
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"interpreter start {start_s:.3f} s; fastest of {args.repeat} runs; imports from one -X importtime run")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("PYTHONDONTWRITEBYTECODE is set: modules without cached bytecode (an editable install's) are "
              "compiled at every start, charged to their package's import time")
    for row in rows:
        imports = ", ".join(f"{k} {v:.2f}" for k, v in row["imports_s"].items())
        heavy = f"  [imports {', '.join(row['heavy'])}]" if row["heavy"] else ""
        print(f"{row['command']:<52} {row['wall_s']:>6.2f} s   work {row['work_s']:.2f}   imports: {imports}{heavy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
