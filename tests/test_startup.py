"""Commands import what they need when they need it: analyze and prune (verify, latency) run
onnxruntime inference without importing torch, which onnxruntime-training's `import onnxruntime`
would otherwise pull in (3-5 s at every start); training still finds onnxruntime.training afterwards.
Each check runs in a fresh interpreter: pytest's own process has imported everything already."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ZOO


def _fresh(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_analyze_and_prune_never_import_torch(tmp_path):
    model, out = str(ZOO / "digits_cnn.onnx"), str(tmp_path / "d.onnx")
    _fresh("import sys\nfrom onnxprune.cli import main\n"
           f"assert main(['analyze', {model!r}]) == 0\n"
           "assert 'onnxruntime' not in sys.modules, 'analyze imported onnxruntime'\n"
           f"assert main(['prune', {model!r}, '-o', {out!r}, '--ratio', '0.5', '--no-report']) == 0\n"
           "assert 'onnxruntime' in sys.modules  # verify and latency ran sessions\n"
           "heavy = [m for m in ('torch', 'sympy', 'onnxruntime.training') if m in sys.modules]\n"
           "assert not heavy, f'prune imported {heavy}'\n")


def test_training_imports_onnxruntime_training_after_an_inference_session(tmp_path):
    model, out = str(ZOO / "mlp.onnx"), str(tmp_path / "m.onnx")
    _fresh("import sys\nfrom onnxprune.runtime import onnxruntime\n"
           "ort = onnxruntime()\nassert 'onnxruntime.training' not in sys.modules and ort.__version__\n"
           "from onnxprune.app.run import run_model\nfrom onnxprune.train.config import TrainConfig\n"
           "config = TrainConfig(steps=4, batch_size=8, lr=0.01, threads=1, loss='distill')\n"
           f"report = run_model({model!r}, {out!r}, None, config, synthetic=32, progress=False, log=lambda _: None, "
           "latency=False)\n"
           "assert report['steps'] == 4 and report['verify']['ok']\n")
