"""The HTML report of `run` and `prune` (and `onnxprune report`): what the JSON records, that the page
holds every chart and table and names no URL, that a browser draws it, and that commands writing no
page never import matplotlib."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .conftest import ZOO
from .test_cli import run_cli


class _Page(HTMLParser):
    """What a reader sees: each <svg> with its <title>, each table with its heading, the headings."""

    def __init__(self) -> None:
        super().__init__()
        self.svg_titles: list[str] = []
        self.tables: list[str] = []  # the h2 before each table
        self.headings: list[str] = []
        self.external: list[str] = []
        self._depth = 0  # inside an <svg>
        self._svg_title: str | None = None
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and value and not value.startswith("#"):
                self.external.append(value)
        if tag == "svg":
            self._depth += 1
            self._svg_title = None
        elif tag == "title" and self._depth:
            self._in = "svg-title"
        elif tag == "h2":
            self._in = "h2"
            self.headings.append("")
        elif tag == "table":
            self.tables.append(self.headings[-1] if self.headings else "")
        elif tag in ("script", "link", "iframe", "img", "object"):
            self.external.append(f"<{tag}>")

    def handle_endtag(self, tag):
        if tag == "svg":
            self._depth -= 1
            self.svg_titles.append(self._svg_title or "")
        elif tag in ("title", "h2"):
            self._in = None

    def handle_data(self, data):
        if self._in == "svg-title" and self._svg_title is None:
            self._svg_title = data
        elif self._in == "h2":
            self.headings[-1] += data


def read_page(path: Path) -> _Page:
    text = path.read_text()
    assert not re.search(r"https?://", text), "the page must name no URL (it is read offline)"
    page = _Page()
    page.feed(text)
    assert not page.external, page.external
    return page


def test_run_writes_the_report_json_and_a_page_with_every_chart(capsys, tmp_path):
    out = tmp_path / "d.onnx"
    status, text, err = run_cli(capsys, "run", ZOO / "digits_cnn.onnx", "--data", ZOO / "digits.npz", "-o", out,
                                "--steps", "20", "--no-progress", "--batch-size", "32")
    assert status == 0, err
    assert f"{tmp_path / 'd.report.html'}" in text
    report = json.loads((tmp_path / "d.report.json").read_text())
    assert report["command"] == "run"
    assert {w["family"] for w in report["widths"]} >= set(report["families"])
    assert all(w["after"] <= w["before"] for w in report["widths"])
    narrowed = [w for w in report["widths"] if w["after"] < w["before"]]
    assert narrowed and all(f"  {w['family']}: {w['before']} -> {w['after']} channels" in text for w in narrowed), text
    assert report["frozen"] and all(f["reasons"] for f in report["frozen"])
    page = read_page(tmp_path / "d.report.html")
    assert page.svg_titles == ["Cost before and after", "Family widths before and after", "Training curves"]
    assert any(h.startswith("Frozen families") for h in page.tables)
    assert "Held-out evaluation" in page.tables and "Time per stage" in page.tables


def test_prune_writes_what_it_measured_and_the_page(capsys, tmp_path):
    out = tmp_path / "r.onnx"
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", out, "--ratio", "0.4", "--erase", "1",
                                "--by", "flops")
    assert status == 0, err
    report = json.loads((tmp_path / "r.report.json").read_text())
    assert report["command"] == "prune"
    assert report["params"]["compact"] < report["params"]["dense"]
    assert report["flops"]["compact"] < report["flops"]["dense"]
    assert report["target"]["by"] == "flops" and 0 < report["target"]["share"] <= 1
    assert report["verify"]["ok"] is True
    assert report["latency_ms"]["batches"] and "summary" in report["latency_ms"]
    assert len(report["erased"]) == 1 and report["erased"][0]["params"] > 0
    assert report["regions_erased"] == [report["erased"][0]["merge"]]
    assert any(w["after"] < w["before"] for w in report["widths"])
    block = report["erased"][0]
    assert f"  erased: block {block['id']}, {block['merge']} ({block['ops']} ops, {block['params']:,} params)" in text
    assert all(f"  {w['family']}: {w['before']} -> {w['after']} channels" in text
               for w in report["widths"] if w["after"] < w["before"]), text
    assert all(f["reasons"] for f in report["frozen"])
    page = read_page(tmp_path / "r.report.html")
    assert page.svg_titles == ["Cost before and after", "Family widths before and after"]
    assert any(h.startswith("Erased blocks (1)") for h in page.tables)
    assert any(h.startswith("Frozen families") for h in page.tables)
    html = (tmp_path / "r.report.html").read_text()
    assert report["erased"][0]["merge"] in html and "Target: remove" in html


def test_no_report_writes_neither_file(capsys, tmp_path):
    status, _, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "-o", tmp_path / "m.onnx", "--ratio", "0.5",
                             "--no-report", "--no-latency")
    assert status == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_report_command_rewrites_the_page_and_refuses_what_is_not_a_report(capsys, tmp_path):
    status, _, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "-o", tmp_path / "m.onnx", "--ratio", "0.5",
                             "--no-latency")
    assert status == 0, err
    (tmp_path / "m.report.html").unlink()
    status, text, err = run_cli(capsys, "report", tmp_path / "m.report.json")
    assert status == 0, err
    assert (tmp_path / "m.report.html").is_file()
    status, _, err = run_cli(capsys, "report", tmp_path / "m.report.json", "-o", tmp_path / "other.html")
    assert status == 0, err
    assert read_page(tmp_path / "other.html").svg_titles == ["Cost before and after", "Family widths before and after"]
    for bad, said in ((tmp_path / "missing.report.json", "no such report file"),
                      (tmp_path / "m.onnx", "not a JSON report")):
        status, _, err = run_cli(capsys, "report", bad)
        assert status == 2 and said in err and len(err.strip().splitlines()) == 1
    (tmp_path / "x.json").write_text("[1, 2]")
    status, _, err = run_cli(capsys, "report", tmp_path / "x.json")
    assert status == 2 and "not an onnxprune report" in err


def test_a_page_renders_from_a_report_without_optional_parts():
    from onnxprune.app.page import render

    page = render({"params": {"dense": 10, "compact": 5}, "families": {"f": {"removed": 1, "size": 4}}})
    assert "Family widths before and after" in page and "No block was erased whole" in page


def test_commands_that_write_no_page_do_not_import_matplotlib(tmp_path):
    code = ("import sys\nfrom onnxprune.cli import main\n"
            f"assert main(['analyze', {str(ZOO / 'mlp.onnx')!r}]) == 0\n"
            f"assert main(['prune', {str(ZOO / 'mlp.onnx')!r}, '-o', {str(tmp_path / 'm.onnx')!r}, '--ratio', '0.5', "
            "'--no-report', '--no-latency']) == 0\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported without a page to write'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no headless browser here (Debian: apt-get install chromium)")
def test_a_browser_draws_the_page(capsys, tmp_path):
    status, _, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "r.onnx", "--ratio", "0.4",
                             "--erase", "1")
    assert status == 0, err
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'p'}"]
    url = (tmp_path / "r.report.html").as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") == 2 and dom.count("<table") >= 3  # parsed as SVG and tables, not text
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1100,2000", f"--screenshot={shot}", url], capture_output=True,
                   timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000  # a drawn page, not a blank one


def test_a_model_with_many_families_charts_the_most_narrowed_and_says_so():
    from onnxprune.app.page import render

    widths = [{"family": f"f{i}", "kind": "channel", "before": 64, "after": 64 - i % 40} for i in range(150)]
    page = _Page()
    page.feed(render({"params": {"dense": 10, "compact": 5}, "widths": widths, "frozen": []}))
    assert page.svg_titles == ["Cost before and after", "Family widths before and after"]
    text = render({"params": {"dense": 10, "compact": 5}, "widths": widths, "frozen": []})
    assert "the 60 most narrowed of 150 families" in text and "Every family is prunable" in text


def test_families_inside_erased_blocks_are_reported_gone():
    from onnxprune.app.command_io import load_model
    from onnxprune.app.report import report_sections
    from onnxprune.passmanager import AnalysisManager
    from onnxprune.space import Selection

    graph = load_model(str(ZOO / "resnet.onnx"), prepared=True)
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    found = report_sections(space, Selection({}, (0,)), erasing)
    gone = {w["family"] for w in found["widths"] if w.get("erased")}
    inside = set(erasing.regions[0].parameters)
    assert gone and all(w["after"] == 0 for w in found["widths"] if w.get("erased"))
    for family in space.prunable:
        assert (family.name in gone) == ({m.value for m in family.producers} <= inside)
    assert found["erased"][0]["merge"] == erasing.regions[0].merge
