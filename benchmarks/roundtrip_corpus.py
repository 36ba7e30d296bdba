"""Round-trip a corpus of ONNX files we did not write through onnxprune and compare.

For every model: load with onnxprune, save, and check that (1) the saved ModelProto equals the original
message for message, (2) onnx.checker (full) accepts it where it accepts the original, and (3)
onnxruntime's outputs on the saved model equal the original's bit for bit (inputs from the model's
test_data_set_0 when it ships one, else seeded random).

    python benchmarks/roundtrip_corpus.py                 # the onnx package's backend test models
    python benchmarks/roundtrip_corpus.py --rapidocr      # also rapidocr-onnxruntime's real OCR models
    python benchmarks/roundtrip_corpus.py DIR_OR_FILE...  # any other models
"""

from __future__ import annotations

import argparse
import collections
import glob
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx

import onnxprune

WORK = Path(__file__).parent / "_work"


def rapidocr_models() -> Path:
    """Download rapidocr-onnxruntime's wheel (no dependencies) from the package registry and unpack its models."""
    target = WORK / "rapidocr"
    if not list(target.rglob("*.onnx")):
        WORK.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "rapidocr-onnxruntime==1.4.4",
                        "-d", str(WORK)], check=True)
        (wheel,) = glob.glob(str(WORK / "rapidocr_onnxruntime-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.endswith(".onnx"):
                    archive.extract(name, target)
    return target


def feeds_for(path: Path, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The model's own test inputs if it ships them, else seeded random inputs."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    data = sorted((path.parent / "test_data_set_0").glob("input_*.pb"))
    if len(data) == len(inputs) and data:
        feeds = {}
        for info, file in zip(inputs, data):
            if not info.type.HasField("tensor_type"):
                raise ValueError("non-tensor input")
            tensor = onnx.TensorProto()
            tensor.ParseFromString(file.read_bytes())
            feeds[info.name] = onnx.numpy_helper.to_array(tensor)
        return feeds
    rng = np.random.default_rng(0)
    feeds = {}
    for info in inputs:
        if not info.type.HasField("tensor_type"):
            raise ValueError("non-tensor input")
        tensor_type = info.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[info.name] = rng.random(shape).astype(dtype)
        else:
            feeds[info.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def run(path: Path, feeds, stage: str) -> list[tuple]:
    from onnxprune.runtime import inference_session

    print(f"STAGE\t{stage}", flush=True)  # if onnxruntime kills the process, the parent knows where

    session = inference_session(path, level="all")  # onnxruntime's default level
    return [_exact(np.asarray(o)) for o in session.run(None, feeds)]


def _exact(array: np.ndarray) -> tuple:
    """A value that is equal for two arrays exactly when they are bit-identical (strings by content)."""
    data = tuple(array.ravel().tolist()) if array.dtype == object else array.tobytes()
    return array.dtype.str, array.shape, data


def check(path: Path, folder: Path) -> str:
    original = onnx.load(path)
    try:
        graph = onnxprune.load(path)
    except onnxprune.ModelError as exc:
        return f"refused by load: {exc.problem}"
    out = folder / "out.onnx"
    onnxprune.save(graph, out)
    if onnx.load(out) != original:
        return "FAIL: saved model differs"
    try:
        onnx.checker.check_model(original, full_check=True)
        original_ok = True
    except Exception:
        original_ok = False
    if original_ok:
        try:
            onnx.checker.check_model(str(out), full_check=True)
        except Exception as exc:
            return f"FAIL: checker rejects the saved model: {exc}"
    try:
        feeds = feeds_for(path, original)
        expected = run(path, feeds, "original")
    except Exception:
        return "identical; original does not run in onnxruntime 1.19"
    if run(out, feeds, "saved") != expected:
        return "FAIL: onnxruntime outputs differ"
    return "identical; onnxruntime outputs bit-identical"


def worker(list_file: Path) -> None:
    """Check the listed models in order, printing one RESULT line each."""
    with tempfile.TemporaryDirectory() as folder:
        for line in list_file.read_text().splitlines():
            print(f"RESULT\t{line}\t{check(Path(line), Path(folder))}", flush=True)


def check_all(files: list[Path]) -> list[tuple[Path, str]]:
    """Run `worker` in child processes; a model that crashes onnxruntime (SIGSEGV/SIGFPE happen on
    some backend test models) is recorded, and a fresh child carries on after it."""
    results: list[tuple[Path, str]] = []
    remaining = list(files)
    with tempfile.TemporaryDirectory() as folder:
        list_file = Path(folder) / "list.txt"
        while remaining:
            list_file.write_text("\n".join(map(str, remaining)))
            child = subprocess.Popen([sys.executable, __file__, "--worker", str(list_file)], stdout=subprocess.PIPE,
                                     text=True)
            stage = ""
            for line in child.stdout:
                kind, _, rest = line.rstrip("\n").partition("\t")
                if kind == "STAGE":
                    stage = rest
                elif kind == "RESULT":
                    path, outcome = rest.split("\t", 1)
                    results.append((Path(path), outcome))
                    remaining.pop(0)
                    stage = ""
            if child.wait() != 0 and remaining:
                crashed = remaining.pop(0)
                outcome = ("identical; original crashes onnxruntime 1.19" if stage == "original"
                           else f"FAIL: crash at stage {stage or 'load/save'} (exit {child.returncode})")
                results.append((crashed, outcome))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rapidocr", action="store_true", help="add rapidocr-onnxruntime's models (downloads its wheel)")
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    roots = args.paths or [Path(onnx.__file__).parent / "backend" / "test" / "data"]
    if args.rapidocr:
        roots.append(rapidocr_models())
    files = sorted({p for root in roots for p in ([root] if root.is_file() else root.rglob("*.onnx"))})
    outcomes: collections.Counter = collections.Counter()
    failures = []
    start = time.perf_counter()
    for path, outcome in check_all(files):
        key = outcome if not outcome.startswith("refused") else "refused by load"
        outcomes[key] += 1
        if outcome.startswith(("FAIL", "refused")):
            failures.append(f"{path}: {outcome}")
    print(f"{len(files)} models in {time.perf_counter() - start:.1f} s")
    for outcome, count in outcomes.most_common():
        print(f"{count:6d}  {outcome}")
    for line in failures[:20]:
        print(line)
    sys.exit(1 if any(f.split(": ", 1)[1].startswith("FAIL") for f in failures) else 0)


if __name__ == "__main__":
    main()
