"""The command line: every command works, and bad input gets one clear line and exit status 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxprune
from onnxprune.cli import main

from .conftest import ZOO, assert_same_outputs, file_digest, random_feeds, run_ort


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_console_script_version_and_exit_codes(tmp_path):
    exe = shutil.which("onnxprune")
    assert exe, "the onnxprune console script is not installed"
    done = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"onnxprune {onnxprune.__version__}"
    done = subprocess.run([exe, "analyze", str(tmp_path / "missing.onnx")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"onnxprune: error: {tmp_path / 'missing.onnx'}: no such file"]
    done = subprocess.run([sys.executable, "-m", "onnxprune", "frobnicate"], capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_passes_lists_builtins_with_docs(capsys):
    status, out, _ = run_cli(capsys, "passes")
    assert status == 0
    for name in ("shapes", "infer-shapes", "cleanup", "check", "cost"):
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert "keep-identity=bool (default False)" in out
    status, out, _ = run_cli(capsys, "passes", "--json")
    assert {row["name"] for row in json.loads(out)} >= {"cleanup", "check"}


def test_analyze_text_and_json(capsys, tmp_path):
    status, out, err = run_cli(capsys, "analyze", ZOO / "vgg.onnx", "--json", tmp_path / "a.json")
    assert status == 0, err
    assert "input  float [N, 3, 32, 32]" in out
    assert "9,889,792 MACs" in out
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["macs"] == 9_889_792
    assert data["op_types"]["Conv"]["count"] == 6
    assert data["inputs"] == [{"name": "input", "dtype": "float", "shape": ["N", 3, 32, 32]}]
    assert sum(e["flops"] for e in data["op_types"].values()) == data["flops"]
    status, out, err = run_cli(capsys, "analyze", ZOO / "vgg.onnx", "--input-shape", "input=2x3x32x32")
    assert status == 0 and f"{2 * 9_889_792:,} MACs" in out
    status, _, err = run_cli(capsys, "analyze", ZOO / "vgg.onnx", "--input-shape", "input=2x3")
    assert status == 2 and "input 'input' has rank 4, but the shape given has 2 dims" in err


def test_opt_runs_a_pipeline(capsys, tmp_path):
    source = tmp_path / "in.onnx"
    shutil.copy(ZOO / "resnet.onnx", source)
    digest = file_digest(source)
    out = tmp_path / "out.onnx"
    status, _, err = run_cli(capsys, "opt", source, "--passes", "infer-shapes,cleanup,check", "-o", out,
                             "--verify-each", "--time-passes", "--dump-after", "cleanup", "--dump-dir", tmp_path / "d")
    assert status == 0, err
    assert "total" in err and f"wrote {out}" in err
    assert (tmp_path / "d" / "02-cleanup.onnx").exists()
    assert file_digest(source) == digest
    feeds = random_feeds(onnx.load(source))
    assert_same_outputs(run_ort(source, feeds), run_ort(out, feeds))
    assert len(onnx.load(out).graph.value_info) > 0
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_opt_refuses_to_overwrite_its_input(capsys, tmp_path):
    source = tmp_path / "in.onnx"
    shutil.copy(ZOO / "mlp.onnx", source)
    status, _, err = run_cli(capsys, "opt", source, "--passes", "cleanup", "-o", source)
    assert status == 2 and "refusing to overwrite the input model" in err


def test_bad_pipeline_is_a_usage_error(capsys, tmp_path):
    status, _, err = run_cli(capsys, "opt", ZOO / "mlp.onnx", "--passes", "cleanup,claenup", "-o", tmp_path / "o.onnx")
    assert status == 2
    assert err.strip() == "onnxprune: error: unknown pass 'claenup'; did you mean 'cleanup'? (`onnxprune passes` lists them)"
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("args, says", [(["run", "m.onnx", "--lr", "abc", "-o", "o.onnx"], "argument --lr: invalid float"),
                                        (["frob"], "invalid choice: 'frob'"),
                                        (["prune", "m.onnx", "-o", "o.onnx"], "--ratio --target-latency is required")])
def test_a_malformed_command_line_is_one_line(capsys, args, says):
    """argparse's own errors, one line (its default printed the usage block first), exit 2."""
    with pytest.raises(SystemExit) as exited:  # argparse exits from inside main
        main(args)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and says in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------------- bad input files
def _model_file(tmp_path: Path, name: str, model: onnx.ModelProto) -> Path:
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _relu_model(domain: str = "", opset: int = 17, out_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], domain=domain)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", out_type, [2])])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def _not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model\n")
    return path


def _empty(tmp_path):
    path = tmp_path / "e.onnx"
    path.write_bytes(b"")
    return path


def _truncated(tmp_path):
    path = tmp_path / "cut.onnx"
    path.write_bytes((ZOO / "vgg.onnx").read_bytes()[:100_000])
    return path


def _checker_failure(tmp_path):
    model = _relu_model()
    model.graph.node[0].input.append("x")  # Relu takes one input
    return _model_file(tmp_path, "bad.onnx", model)


BAD_INPUTS = {
    "missing file": (lambda p: p / "nope.onnx", "no such file"),
    "directory": (lambda p: p, "is a directory, not an ONNX model file"),
    "empty file": (_empty, "is empty, not an ONNX model"),
    "not onnx": (_not_onnx, "is not an ONNX model"),
    "truncated": (_truncated, "is truncated: the protobuf data ends in the middle of a field"),
    "checker": (_checker_failure, "fails the ONNX checker: "),
    "unknown opset": (lambda p: _model_file(p, "o.onnx", _relu_model(opset=99)),
                      "uses ai.onnx opset 99, newer than the 22 that onnxprune's onnx knows"),
    "custom domain": (lambda p: _model_file(p, "c.onnx", _relu_model(domain="com.acme")),
                      "uses operators from custom domain 'com.acme' (Relu) that onnxprune does not know"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_one_line_and_status_2(case, capsys, tmp_path):
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    status, out, err = run_cli(capsys, "analyze", path)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"onnxprune: error: {path}: ")
    assert message in lines[0]
    assert "Traceback" not in err
    status, _, err = run_cli(capsys, "--debug", "analyze", path)
    assert status == 2 and "Traceback" in err


def test_custom_domain_can_be_allowed(capsys, tmp_path):
    path = _model_file(tmp_path, "c.onnx", _relu_model(domain="com.acme"))
    status, out, err = run_cli(capsys, "analyze", path, "--allow-custom-ops")
    assert status == 0, err
    assert "cost unknown" in out and "Relu" in out


def test_internal_errors_exit_1_without_traceback(capsys, monkeypatch):
    import onnxprune.app.analyze as command

    def explode(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(command, "analyze", explode)
    status, _, err = run_cli(capsys, "analyze", ZOO / "mlp.onnx")
    assert status == 1
    assert err.strip() == ("onnxprune: internal error: RuntimeError: kaboom (rerun with --debug for the traceback "
                           "and report it)")


def test_quick_start_model_is_accurate():
    """The README's trained model really classifies its bundled data."""
    data = np.load(ZOO / "digits.npz")
    test = data["is_test"].astype(bool)
    (logits,) = run_ort(ZOO / "digits_cnn.onnx", {"input": data["input"][test]})
    accuracy = float((logits.argmax(1) == data["labels"][test]).mean())
    assert accuracy >= 0.95


def test_analyze_lists_families_and_draws_them(capsys, tmp_path):
    status, out, err = run_cli(capsys, "analyze", ZOO / "resnet.onnx", "--dot", tmp_path / "g.dot", "--json",
                               tmp_path / "a.json")
    assert status == 0, err
    assert "8 families, 6 prunable" in out
    assert "frozen: input axis 1: model input 'input'" in out
    data = json.loads((tmp_path / "a.json").read_text())
    assert sorted(f["size"] for f in data["families"] if f["prunable"]) == [16, 16, 32, 32, 64, 64]
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph onnxprune {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") >= 30 and 'label="F1"' in dot and "(frozen)" in dot


def test_a_closed_pipe_ends_quietly(tmp_path):
    exe = shutil.which("onnxprune")
    done = subprocess.run(f"'{exe}' analyze '{ZOO / 'gpt.onnx'}' | head -1", shell=True, capture_output=True, text=True)
    assert done.stdout.count("\n") == 1 and done.stderr == ""  # no BrokenPipeError


def test_debug_is_accepted_after_the_command(capsys, tmp_path):
    code, _, err = run_cli(capsys, "analyze", tmp_path / "missing.onnx", "--debug")
    assert code == 2 and "Traceback" in err


def test_a_verify_failure_is_our_bug_exit_1(capsys, tmp_path, monkeypatch):
    from onnxprune.passes import verify

    def broken(reference, candidate, feeds, tolerance, atol=1e-6):
        return verify.VerifyReport(0.5, 0.25, tolerance, ok=False)

    monkeypatch.setattr(verify, "compare", broken)
    code, _, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "--ratio", "0.5", "-o", tmp_path / "o.onnx")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "max abs diff 0.5, max rel diff 0.25" in err and "a bug in onnxprune" in err
    assert not (tmp_path / "o.onnx").exists()


def test_main_leaves_the_warning_hook_as_it_found_it(capsys):
    import warnings

    before = warnings.showwarning
    run_cli(capsys, "passes")
    assert warnings.showwarning is before


def test_a_plugin_that_exits_at_import_is_skipped_with_a_warning(monkeypatch):
    from onnxprune.passmanager import registry

    class Point:
        name, value, dist = "bad", "bad_plugin:Pass", None

        def load(self):
            raise SystemExit(3)

    monkeypatch.setattr(registry, "entry_points", lambda group: [Point()])
    with pytest.warns(registry.PluginWarning, match="skipping pass plugin 'bad'"):
        names = registry.Registry().names()
    assert "cleanup" in names


def test_a_newline_in_a_path_keeps_the_error_on_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "analyze", tmp_path / "two\nlines.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    import onnxprune.app.prune as command

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o.onnx"))

    monkeypatch.setattr(command, "save", full)
    code, _, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "--ratio", "0.5", "-o", tmp_path / "o.onnx",
                           "--no-latency")
    assert code == 2 and err.strip() == f"onnxprune: error: cannot write {tmp_path / 'o.onnx'}: No space left on device"


@pytest.mark.parametrize("command", [["prune", ZOO / "mlp.onnx", "--ratio", "0.5"],
                                     ["opt", ZOO / "mlp.onnx", "--passes", "cleanup"],
                                     ["run", ZOO / "digits_cnn.onnx", "--data", ZOO / "digits.npz"]])
def test_an_output_in_a_missing_folder_is_one_line(capsys, tmp_path, command):
    """`prune -o missing/dir/x.onnx`: the folder is not created (a typo would scatter outputs); one line
    names it, before any work."""
    out = tmp_path / "missing" / "dir" / "x.onnx"
    code, stdout, err = run_cli(capsys, *command, "-o", out)
    assert code == 2 and err.strip() == f"onnxprune: error: {out}: folder {out.parent} does not exist" and not stdout
    assert not (tmp_path / "missing").exists()


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder refuse every write the way a read-only one does (EACCES), whoever asks: file
    opens for writing, new folders, renames into it. (Tests run as root here, where chmod cannot.)"""
    import builtins
    import errno
    import io
    import os

    def guard(folder: Path):
        folder = folder.resolve()

        def inside(path) -> bool:
            try:
                return Path(os.fsdecode(path)).resolve().is_relative_to(folder)
            except (TypeError, ValueError):
                return False

        def refuse(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

        real_open, real_mkdir, real_replace, real_rename = builtins.open, os.mkdir, os.replace, os.rename

        def open_(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and inside(file):
                refuse(file)
            return real_open(file, mode, *args, **kwargs)

        def mkdir(path, *args, **kwargs):
            if inside(path):
                refuse(path)
            return real_mkdir(path, *args, **kwargs)

        def move(real):
            def moved(src, dst, *args, **kwargs):
                if inside(dst):
                    refuse(dst)
                return real(src, dst, *args, **kwargs)
            return moved

        for module, name, value in ((builtins, "open", open_), (io, "open", open_), (os, "mkdir", mkdir),
                                    (os, "replace", move(real_replace)), (os, "rename", move(real_rename))):
            monkeypatch.setattr(module, name, value)
    return guard


@pytest.mark.parametrize("command", [["prune", ZOO / "mlp.onnx", "--ratio", "0.5", "--round-to", "1"],
                                     ["run", ZOO / "digits_cnn.onnx", "--data", ZOO / "digits.npz", "--steps", "2",
                                      "--batch-size", "32", "--round-to", "4", "--no-progress", "--no-latency"]])
def test_a_read_only_output_folder_is_one_line(capsys, tmp_path, read_only, command):
    """Read as an internal error (or torch's "enforce fail" text) before."""
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(folder)
    code, _, err = run_cli(capsys, *command, "-o", folder / "o.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Permission denied" in err, err
    assert str(folder) in err and "internal error" not in err
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_really_read_only_output_folder_is_one_line(capsys, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, _, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "--ratio", "0.5", "--round-to", "1", "-o",
                               folder / "o.onnx")
    finally:
        folder.chmod(0o755)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Permission denied" in err
    assert list(folder.iterdir()) == []


def test_ctrl_c_exits_130_in_start_up_and_in_training_alike(capsys, tmp_path, monkeypatch):
    """Ctrl-C exited 130 during start-up but 2 during training; now 130 and one line both times."""
    from onnxprune.app import run
    from onnxprune.train import sparse

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    args = ["run", ZOO / "digits_cnn.onnx", "--data", ZOO / "digits.npz", "--steps", "6", "--batch-size", "32",
            "--round-to", "4", "--no-progress", "--no-latency", "-o", tmp_path / "o.onnx"]
    with monkeypatch.context() as patch:
        patch.setattr(run, "check_bounds", stop)  # the first thing `run` does
        code, _, err = run_cli(capsys, *args)
    assert code == 130 and err.strip() == "onnxprune: interrupted"
    calls = []
    real = sparse.check_batch

    def stop_at_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sparse, "check_batch", stop_at_third_batch)
    code, _, err = run_cli(capsys, *args)
    assert code == 130 and len(err.strip().splitlines()) == 1, err
    assert "interrupted at step 2; resume with --resume" in err
    assert not (tmp_path / "o.onnx").exists() and (tmp_path / "o.ckpt" / "progress.json").exists()


def test_an_output_through_a_symbolic_link_keeps_the_link(capsys, tmp_path):
    """`-o link.onnx` where link.onnx points elsewhere: the target gets the model, the link stays a link."""
    real = tmp_path / "real.onnx"
    real.write_bytes(b"old")
    link = tmp_path / "link.onnx"
    link.symlink_to(real)
    code, _, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "--ratio", "0.5", "-o", link, "--no-latency",
                           "--no-report")
    assert code == 0, err
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert onnxprune.load(link).initializers and real.read_bytes() != b"old"


def test_a_write_error_names_the_output_not_a_temporary_file(tmp_path):
    import errno

    from onnxprune.files import atomic_write

    with pytest.raises(OSError) as raised:
        with atomic_write(tmp_path / "out.json", "w") as handle:
            handle.write("{}")
            raise OSError(errno.ENOSPC, "No space left on device", handle.name)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone, nothing half-written stays
