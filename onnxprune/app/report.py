"""The report the commands record: OUT.report.json's contents and where a report's files lie.

The report JSON is the contract between the commands and the page (`page.py`): `report_sections`
builds the parts both `run` and `prune` record from the analysis (`widths`, `frozen`, `erased`),
`prune_report` what `prune` and `compact` measured; the page reads only this plain data, so a report
written by an older or newer onnxprune still renders what it has.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError


def report_sections(space, selection, erasing=None) -> dict[str, Any]:
    """The report's analysis parts: every prunable family's width before and after `selection`
    (`widths`), the frozen families with their reasons (`frozen`) and the regions erased whole
    (`erased`). Plain data, so `render` needs neither the model nor the analysis."""
    # a family whose producing weights all sit in erased blocks is gone with them, whatever its groups say
    gone = {name for r in selection.erased for name in erasing.regions[r].parameters} if selection.erased else set()
    widths = []
    for f in space.prunable:
        producers = {m.value for m in f.producers}
        erased = bool(producers) and producers <= gone
        widths.append({"family": f.name, "kind": f.kind, "before": f.size,
                       "after": 0 if erased else f.size - len(set(selection.pruned.get(f.id, ()))),
                       **({"erased": True} if erased else {})})
    frozen = [{"family": f.name, "kind": f.kind, "size": f.size, "reasons": list(f.reasons)}
              for f in space.families if not f.prunable]
    erased = []
    for region_id in selection.erased:
        region = erasing.regions[region_id]
        erased.append({"id": region_id, "merge": region.merge, "entry": region.entry, "ops": len(region.ops),
                       "params": int(region.params), "flops": int(region.flops)})
    return {"widths": widths, "frozen": frozen, "erased": erased}


def prune_report(command: str, model: str, output: str, space, erasing, selection, before, after, *,
                 nodes: tuple[int, int], outcome=None, verify=None, latency: dict | None = None,
                 input_shapes: Sequence[str] = ()) -> dict[str, Any]:
    """What `prune` (or `compact`) measured, in the keys `run`'s report uses: params, FLOPs and nodes
    of the original (`dense`) and the compact model, latency, the selection's target against what it
    reached (`outcome`, from `select`), verify, and the analysis parts of `report_sections`."""
    report: dict[str, Any] = {
        "command": command, "model": str(model), "output": str(output),
        "groups_removed": selection.group_count,
        "regions_erased": [erasing.regions[r].merge for r in selection.erased],
        "nodes": {"dense": nodes[0], "compact": nodes[1]},
        "params": {"dense": int(before.parameters), "compact": int(after.parameters)},
        "flops": {"dense": int(before.flops), "compact": int(after.flops)},
    }
    if outcome is not None:
        report["target"] = {"by": outcome.by, "target": float(outcome.target), "removed": float(outcome.removed),
                            "total": float(outcome.total), "share": float(outcome.share)}
    if verify is not None:
        report["verify"] = {"max_abs": float(verify.max_abs), "max_rel": float(verify.max_rel), "ok": bool(verify.ok)}
    if latency is not None:
        report["latency_ms"] = latency
        if input_shapes:
            report["latency_ms"]["input_shapes"] = list(input_shapes)
    report.update(report_sections(space, selection, erasing))
    return report


def report_paths(output: str | Path) -> tuple[Path, Path, Path]:
    """`OUT.onnx` → (`OUT.report.json`, `OUT.report.html`, `OUT.metrics.jsonl`), the names `run` uses."""
    stem = Path(output).with_suffix("")
    return Path(f"{stem}.report.json"), Path(f"{stem}.report.html"), Path(f"{stem}.metrics.jsonl")


def beside_report(report_json: str | Path, suffix: str) -> Path:
    """A file that belongs to a report: `X.report.json` → `X<suffix>` (`.report.html`, `.metrics.jsonl`)."""
    name = Path(report_json).name
    stem = name[:-len(".report.json")] if name.endswith(".report.json") else Path(name).stem
    return Path(report_json).with_name(stem + suffix)


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a metrics JSON-lines file; a line cut short (a killed run) is skipped, a missing
    file is no rows."""
    rows = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), (int, float)):
            rows.append(row)
    return rows


def read_report(path: str | Path) -> dict:
    """A report JSON, refused in one line if it is missing or not a report."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such report file (run and prune write OUT.report.json beside OUT)") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a JSON report ({type(error).__name__})") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give OUT.report.json") from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise UserError(f"{path}: not an onnxprune report (no 'params' figures); give the OUT.report.json that "
                        "run or prune wrote")
    return data



def write_report_page(report_json: str | Path, output: str | Path | None = None,
                      metrics: str | Path | None = None) -> tuple[str | Path, list[dict]]:
    """`onnxprune report`: write the HTML page of a report JSON (default: `X.report.html` beside it) with
    the training metrics (default: `X.metrics.jsonl` beside it, when there); return the page's path and
    the metric rows it shows."""
    from .command_io import check_output_path, write_page

    report = read_report(report_json)
    output = output or beside_report(report_json, ".report.html")
    check_output_path(output, (report_json,))
    rows = read_metrics(metrics or beside_report(report_json, ".metrics.jsonl"))
    write_page(report, output, rows)
    return output, rows


__all__ = ["beside_report", "prune_report", "read_metrics", "read_report", "report_paths", "report_sections",
           "write_report_page"]
