"""Data-parallel `onnxprune run` under torchrun: 2 gloo ranks on the CPU train what one process trains
with the same global batch (parameters within 1e-5, the same groups), and rank 0 alone writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from .conftest import ZOO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(tmp_path):
    """Inputs for the zoo MLP (64 features) labelled by a fixed random linear teacher (10 classes)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((640, 64)).astype(np.float32)
    labels = (x @ rng.standard_normal((64, 10))).argmax(axis=1).astype(np.int64)
    path = tmp_path / "data.npz"
    np.savez(path, input=x, labels=labels)
    return path


def _run(tmp_path, name: str, ranks: int, engine: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    out = tmp_path / f"{name}.onnx"
    data = () if "--data" in extra else ("--data", str(_data(tmp_path)))
    args = ["run", str(ZOO / "mlp.onnx"), *data, "-o", str(out), "--steps", "20",
            "--batch-size", "32", "--lr", "0.05", "--engine", engine, "--threads", "1", "--no-progress",
            "--no-latency", "--no-report", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        command = [sys.executable, "-m", "onnxprune", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}",
                   f"--master-port={_free_port()}", "-m", "onnxprune", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=600)


def _weights(path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ort", "torch"])
def test_two_gloo_ranks_train_what_one_process_trains(tmp_path, engine):
    single = _run(tmp_path, "single", 1, engine)
    assert single.returncode == 0, single.stderr[-2000:]
    double = _run(tmp_path, "double", 2, engine, ("--checkpoint-every", "10"))
    assert double.returncode == 0, double.stderr[-2000:]
    one, two = (json.loads((tmp_path / f"{n}.report.json").read_text()) for n in ("single", "double"))
    assert (one["ranks"], two["ranks"]) == (1, 2)
    assert two["families"] == one["families"] and two["groups_removed"] == one["groups_removed"] > 0
    a, b = _weights(tmp_path / "single.onnx"), _weights(tmp_path / "double.onnx")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert double.stdout.count("trained 20 steps") == 1  # rank 0 alone reports
    metrics = [json.loads(line)["step"] for line in (tmp_path / "double.metrics.jsonl").read_text().splitlines()]
    assert metrics == sorted(set(metrics))  # one writer: no step twice


FACTORY = '''
import os
import numpy as np


def batches():
    """The data of _data() in fixed batches of 32; a KeyboardInterrupt (Ctrl-C) after STOP_AT of them."""
    with np.load(os.environ["DDP_TEST_DATA"]) as archive:
        x, labels = archive["input"], archive["labels"]
    stop = int(os.environ.get("DDP_TEST_STOP_AT", "0"))
    for index, start in enumerate(range(0, len(x), 32)):
        if stop and index == stop:
            raise KeyboardInterrupt
        yield {"input": x[start:start + 32], "labels": labels[start:start + 32]}
'''


@pytest.mark.slow
def test_resume_with_another_number_of_ranks(tmp_path, monkeypatch):
    """2 ranks interrupted at step 12 (rank 0 saves the checkpoint), resumed by 1 process: the same model
    as 20 uninterrupted steps of 1 process."""
    (tmp_path / "ddp_batches.py").write_text(FACTORY)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("DDP_TEST_DATA", str(_data(tmp_path)))
    factory = ("--data", "ddp_batches:batches")
    single = _run(tmp_path, "single", 1, "ort", factory)
    assert single.returncode == 0, single.stderr[-2000:]
    monkeypatch.setenv("DDP_TEST_STOP_AT", "12")
    stopped = _run(tmp_path, "resumed", 2, "ort", factory)
    assert stopped.returncode != 0 and "interrupted at step 12" in stopped.stderr
    assert json.loads((tmp_path / "resumed.ckpt" / "progress.json").read_text())["step"] == 12
    monkeypatch.delenv("DDP_TEST_STOP_AT")
    resumed = _run(tmp_path, "resumed", 1, "ort", (*factory, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _weights(tmp_path / "single.onnx"), _weights(tmp_path / "resumed.onnx")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-5, err_msg=name)
