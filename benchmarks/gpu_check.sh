#!/usr/bin/env bash
# One command for a machine with a CUDA GPU: runs the CUDA tests and the GPU benchmarks, prints one JSON
# summary on stdout (the logs go to stderr and to $GPU_CHECK_DIR).
#
#     benchmarks/gpu_check.sh              # from the repository root, with onnxprune and torch (CUDA) installed
#     PYTHON=/path/to/python GPU_CHECK_DIR=/tmp/gpu benchmarks/gpu_check.sh
#
# CUDA tests are the tests whose name contains "cuda" (pytest -k cuda); on a machine without a GPU they
# skip, and here a skip counts as a failure: the GPU was there and the test did not run. Benchmarks:
# benchmarks/optimizer_step.py on CUDA and on the CPU at every core (the issue-14 table), and
# benchmarks/train_throughput.py on CUDA where it has a --device option. Exit status: 0 when every
# CUDA test passed and every benchmark ran, 1 otherwise, 2 when there is no CUDA device.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${GPU_CHECK_DIR:-$(mktemp -d)}
mkdir -p "$OUT"

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device visible to torch ($PYTHON)" >&2
    exit 2
fi

"$PYTHON" -m pytest -q -k cuda -p no:cacheprovider --junitxml="$OUT/cuda_tests.xml" tests >"$OUT/cuda_tests.log" 2>&1
echo "cuda tests: exit $? (log $OUT/cuda_tests.log)" >&2

"$PYTHON" benchmarks/optimizer_step.py --device cpu,cuda --threads "$(nproc)" --rounds 5 \
    --optimizers sgd,hesso,dhspg,dhspg-compiled \
    --json "$OUT/optimizer_step.json" >"$OUT/optimizer_step.log" 2>&1
echo "optimizer_step: exit $? (log $OUT/optimizer_step.log)" >&2

if "$PYTHON" benchmarks/train_throughput.py --help 2>/dev/null | grep -q -- "--device"; then
    "$PYTHON" benchmarks/train_throughput.py --device cuda >"$OUT/train_throughput.log" 2>&1
    echo "train_throughput: exit $? (log $OUT/train_throughput.log)" >&2
fi

"$PYTHON" - "$OUT" <<'EOF'
import json, os, subprocess, sys
import xml.etree.ElementTree as ET

import torch

out = sys.argv[1]
summary = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "logs": out}
try:
    suite = ET.parse(os.path.join(out, "cuda_tests.xml")).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    cases = suite.findall("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    summary["cuda_tests"] = {"run": len(cases), "failed": failed, "skipped": skipped,
                             "passed": len(cases) - len(failed) - len(skipped)}
except (OSError, ET.ParseError) as error:
    summary["cuda_tests"] = {"error": str(error)}
try:
    with open(os.path.join(out, "optimizer_step.json")) as f:
        summary["optimizer_step"] = json.load(f)
except OSError as error:
    summary["optimizer_step"] = {"error": str(error)}
throughput = os.path.join(out, "train_throughput.log")
if os.path.exists(throughput):
    with open(throughput) as f:
        summary["train_throughput_tail"] = f.read()[-2000:]
tests = summary["cuda_tests"]
ok = "error" not in tests and tests["run"] > 0 and not tests["failed"] and not tests["skipped"] and \
    "error" not in summary["optimizer_step"]
summary["ok"] = ok
print(json.dumps(summary, indent=1))
sys.exit(0 if ok else 1)
EOF
