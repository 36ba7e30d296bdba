"""`onnxprune passes --ops`: what onnxprune knows of every standard op, from the tables that hold it."""

from __future__ import annotations

import json

import onnx

from onnxprune.ops.coverage import coverage
from onnxprune.ops.registry import all_records

from .test_cli import run_cli


def test_every_op_a_record_names_is_a_standard_op():
    standard = {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain in ("", "ai.onnx")}
    named = {r.op_type for r in all_records() if r.domain == ""}
    assert named <= standard, sorted(named - standard)  # a typo would silently leave an op unknown


def test_coverage_rows_read_the_tables():
    rows = {r.op_type: r for r in coverage()}
    assert rows["Conv"].coupling and rows["Conv"].rewrite and rows["Conv"].erasing == "producers"
    assert rows["DequantizeLinear"].coupling and not rows["DequantizeLinear"].foldable
    assert rows["Cast"].foldable and rows["HardSwish"].training == "rewritten"
    assert rows["LSTM"].training == "refused" and not rows["LSTM"].coupling  # no record: refused (fail closed)
    assert rows["Tan"].training == "refused" and rows["Relu"].training == "onnxruntime"
    assert rows["Shape"].training == "ends the path"


def test_passes_ops_prints_the_table_and_json(capsys):
    code, out, _ = run_cli(capsys, "passes", "--ops")
    assert code == 0 and "standard ONNX ops have a coupling rule" in out.splitlines()[0]
    assert any(line.startswith("QuantizeLinear ") for line in out.splitlines())
    code, out, _ = run_cli(capsys, "passes", "--ops", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == len(coverage()) and {"op_type", "coupling", "training"} <= set(rows[0])


def test_the_readme_table_is_current():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = coverage()
    assert f"| coupling rule | {sum(r.coupling for r in rows)} |" in readme  # regenerate the table when rules change
