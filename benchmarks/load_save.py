"""Load + save speed and peak memory of onnxprune on a ResNet-50-sized model (about 100 MB of weights).

Each measurement runs in a fresh process: peak RSS is the process's high-water mark (VmHWM) minus its
resident size just before loading; memory-mapped file pages that are read count as resident. onnx.load + onnx.save is measured the same way for comparison.

    python benchmarks/load_save.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
path, out, mode = sys.argv[1:4]
import onnx, onnxprune

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

base = status_kib("VmRSS")
start = time.perf_counter()
if mode == "onnxprune":
    graph = onnxprune.load(path)
    loaded = time.perf_counter()
    onnxprune.save(graph, out)
else:
    model = onnx.load(path)
    loaded = time.perf_counter()
    onnx.save(model, out)
end = time.perf_counter()
peak = status_kib("VmHWM")  # this process's own high-water mark (ru_maxrss would include the parent's)
print(json.dumps({"load_s": loaded - start, "total_s": end - start, "peak_extra_mib": (peak - base) / 1024}))
"""


def measure(path: Path, out: Path, mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(out), mode], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import onnx
    from resnet50 import resnet50

    with tempfile.TemporaryDirectory() as folder:
        path, out = Path(folder) / "resnet50.onnx", Path(folder) / "out.onnx"
        model = resnet50()
        onnx.save(model, path)
        del model
        size_mib = path.stat().st_size / 2**20
        print(f"model: ResNet-50 shape, {size_mib:.1f} MiB on disk")
        for mode in ("onnxprune", "onnx"):
            runs = [measure(path, out, mode) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["total_s"])
            peak = max(r["peak_extra_mib"] for r in runs)
            print(f"{mode:>9}: load {best['load_s']:.3f} s, load+save {best['total_s']:.3f} s (best of {args.repeat}); "
                  f"peak extra RSS {peak:.0f} MiB = {peak / size_mib:.2f}x the model size")
            if mode == "onnxprune":
                assert onnx.load(out) == onnx.load(path), "round trip changed the model"


if __name__ == "__main__":
    main()
