"""The page a person looks at after `run` or `prune`: one self-contained HTML page from OUT.report.json
(and OUT.metrics.jsonl beside it, when training wrote one).

The page holds what decides whether a pruned model is worth keeping: params, FLOPs and latency before
and after, how wide each family was and is, the training curves, the blocks erased whole and why the
other families could not be touched. Charts are matplotlib figures written as inline SVG, so the page
needs no network, no script and no font download; matplotlib is imported only here, and only when a
page is written, so commands that write no page never pay for it. `render` reads only the plain data
of the report JSON (`report.py`).
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path

from ..files import atomic_write

# What a chart shows at most: a model with hundreds of families gets a readable chart of the most
# pruned ones (the page says how many are left out), not a chart too tall to scroll.
_MAX_CHART_FAMILIES = 60
_ORIGINAL, _COMPACT, _ACCENT = "#b8c2cc", "#2b6cb0", "#c05621"


def write_html(report: dict, html_path: str | Path, metrics: Sequence[dict] = ()) -> Path:
    """Render `report` (and training `metrics`) and write the page atomically."""
    page = render(report, metrics)
    with atomic_write(html_path, "w") as handle:
        handle.write(page)
    return Path(html_path)


# ---------------------------------------------------------------------- the page
def render(report: dict, metrics: Sequence[dict] = ()) -> str:
    """The whole page as one HTML string: inline CSS and SVG, no script, no URL."""
    title = f"onnxprune {report.get('command', 'run')}: {Path(str(report.get('model', 'model'))).name}"
    parts = [f"<h1>{_e(title)}</h1>", _intro(report), _cost_section(report)]
    parts.append(_widths_section(report))
    if metrics:
        parts.append(_training_section(metrics))
    parts.append(_erased_section(report))
    parts.append(_calibration_section(report))
    parts.append(_cric_section(report))
    parts.append(_frozen_section(report))
    if report.get("time_s"):
        parts.append(_table("Time per stage", ["stage", "seconds"],
                            [[k, f"{v:.2f}"] for k, v in report["time_s"].items()], numeric=(1,)))
    from .. import __version__

    parts.append(f"<p class=\"note\">Written by onnxprune {_e(__version__)} from the command's report JSON.</p>")
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{_e(title)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1a202c;
       background: #f7fafc; margin: 0; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 1.15em; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #e2e8f0; }
p.meta { color: #4a5568; margin: 2px 0; font-size: 0.92em; word-break: break-all; }
p.note { color: #4a5568; font-size: 0.88em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 8px 0; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #edf2f7; vertical-align: top; }
th { background: #edf2f7; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.92em; word-break: break-all; }
td.name { min-width: 14em; }
td.lines { white-space: pre-line; }
details summary { color: #2b6cb0; cursor: pointer; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #e2e8f0; border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card .label { color: #4a5568; font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.04em; }
.card .value { font-size: 1.35em; font-weight: 600; }
.card .detail { color: #4a5568; font-size: 0.82em; }
.good { color: #276749; } .bad { color: #c53030; }
figure { margin: 8px 0; }
figure svg { max-width: 100%; height: auto; }
"""


def _intro(report: dict) -> str:
    """Where the model came from and went, the headline changes as cards, and the checks."""
    lines = [f"<p class=\"meta\">model {_e(report.get('model', '?'))} &rarr; {_e(report.get('output', '?'))}</p>"]
    if report.get("command") == "run" or "steps" in report:
        lines.append(f"<p class=\"meta\">trained {report.get('steps', '?')} steps on {_e(report.get('data', '?'))}; "
                     f"group sparsity {report.get('group_sparsity', 0):.3f}</p>")
    cards = []
    for key, label in (("params", "Parameters"), ("flops", "FLOPs per run")):
        pair = report.get(key) or {}
        if "dense" in pair and "compact" in pair:
            cards.append(_card(label, _short(pair["compact"]), pair["dense"], pair["compact"]))
    for row in _latency_rows(report):
        cards.append(_card(f"Latency, batch {row['batch']}", f"{row['compact']:.3f} ms", row["original"],
                           row["compact"]))
    lines.append(f"<div class=\"cards\">{''.join(cards)}</div>")
    target = report.get("target")
    if target:
        total = target.get("total") or 0
        wanted = 100 * target["target"] / total if total else 0.0
        lines.append(f"<p>Target: remove {wanted:.1f}% of the {_e(target['by'])}; reached "
                     f"<strong>{100 * target['share']:.2f}%</strong> (measured on the compact model).</p>")
    verify = report.get("verify")
    if verify:
        ok = verify.get("ok", True)
        lines.append(f"<p>Verify (the compact model against the zeroed one): <span class=\"{'good' if ok else 'bad'}\">"
                     f"{'passed' if ok else 'FAILED'}</span>, max abs diff {verify.get('max_abs', 0):.3g}, "
                     f"max rel diff {verify.get('max_rel', 0):.3g}.</p>")
    elif report.get("command") in ("prune", "compact"):
        lines.append("<p class=\"note\">Verify was skipped (--no-verify).</p>")
    if report.get("eval"):
        keys = sorted({k for found in report["eval"].values() for k in found if k != "samples"})
        rows = [[{"dense": "trained (zeroed)"}.get(name, name), *[_metric(found.get(k)) for k in keys],
                 str(found.get("samples", ""))] for name, found in report["eval"].items()]
        lines.append(_table("Held-out evaluation", ["model", *keys, "samples"], rows,
                            numeric=tuple(range(1, len(keys) + 2))))
    if report.get("teacher"):
        lines.append(f"<p class=\"bad\">{_e(report['teacher'].get('note', ''))}</p>")
    return "\n".join(lines)


def _card(label: str, value: str, before: float, after: float) -> str:
    change = f"{100 * (after - before) / before:+.1f}%" if before else ""
    tone = "good" if after < before else "bad" if after > before else ""
    return (f"<div class=\"card\"><div class=\"label\">{_e(label)}</div><div class=\"value\">{_e(value)}</div>"
            f"<div class=\"detail\">from {_e(_short(before) if isinstance(before, int) else f'{before:.3f} ms')} "
            f"<span class=\"{tone}\">{change}</span></div></div>")


def _latency_rows(report: dict) -> list[dict]:
    """Per batch size: the original's and the compact model's median latency (ms)."""
    found = report.get("latency_ms") or {}
    rows = []
    for entry in found.get("batches", []):
        if "original" in entry and "compact" in entry:
            rows.append({"batch": entry["batch"], "original": entry["original"]["median_ms"],
                         "compact": entry["compact"]["median_ms"], "runs": entry.get("runs")})
    return rows


def _cost_section(report: dict) -> str:
    """Params, FLOPs and latency before and after: a chart and the exact figures."""
    bars: list[tuple[str, float, float, str]] = []
    rows = []
    for key, label in (("params", "parameters"), ("flops", "FLOPs per run"), ("nodes", "graph nodes")):
        pair = report.get(key) or {}
        if "dense" in pair and "compact" in pair:
            before, after = pair["dense"], pair["compact"]
            rows.append([label, f"{before:,}", f"{after:,}", _change(before, after)])
            if key != "nodes":
                bars.append((label.capitalize() if key == "params" else "FLOPs", before, after, ""))
    latency = report.get("latency_ms") or {}
    for row in _latency_rows(report):
        rows.append([f"latency, batch {row['batch']} (median ms)", f"{row['original']:.3f}", f"{row['compact']:.3f}",
                     _change(row["original"], row["compact"])])
        bars.append((f"Latency, batch {row['batch']}", row["original"], row["compact"], "ms"))
    if not rows:
        return ""
    parts = ["<h2>Cost before and after</h2>"]
    if bars:
        parts.append(_figure_html(_cost_chart(bars), "Cost before and after"))
    parts.append(_table("", ["", "original", "compact", "change"], rows, numeric=(1, 2, 3)))
    notes = list(latency.get("notes", []))
    if latency.get("threads"):
        notes.insert(0, f"Latency: onnxruntime on the CPU, {latency['threads']} thread(s), "
                        f"{'/'.join(sorted(set(latency.get('levels', {}).values())))} graph optimisations, median of "
                        "interleaved runs.")
    if latency.get("not_faster_at"):
        notes.append(f"Not faster at batch {' and '.join(map(str, latency['not_faster_at']))}.")
    if latency.get("input_shapes"):
        notes.append(f"Inputs bound to {', '.join(latency['input_shapes'])}.")
    parts.extend(f"<p class=\"note\">{_e(n)}</p>" for n in notes)
    return "\n".join(parts)


def _widths_section(report: dict) -> str:
    widths = report.get("widths")
    if widths is None:  # a report from before widths were recorded: what was removed is all there is
        found = report.get("families") or {}
        widths = [{"family": name, "kind": "channel", "before": f["size"], "after": f["size"] - f["removed"]}
                  for name, f in found.items()]
    parts = ["<h2>Family widths before and after</h2>"]
    if not widths:
        parts.append("<p>No family is prunable: nothing could be narrowed (see the frozen families below).</p>")
        return "\n".join(parts)
    shown = widths
    if len(widths) > _MAX_CHART_FAMILIES:
        ranked = sorted(range(len(widths)), key=lambda i: (widths[i]["after"] / max(widths[i]["before"], 1), i))
        keep = set(ranked[:_MAX_CHART_FAMILIES])
        shown = [w for i, w in enumerate(widths) if i in keep]
    erased = sum(1 for w in widths if w.get("erased"))
    narrowed = sum(1 for w in widths if w["after"] < w["before"] and not w.get("erased"))
    parts.append(f"<p>{narrowed} of {len(widths)} prunable families narrowed"
                 + (f", {erased} removed with the blocks erased whole" if erased else "") + "; "
                 f"{sum(w['before'] - w['after'] for w in widths):,} of {sum(w['before'] for w in widths):,} "
                 "groups (channels or heads) removed.</p>")
    parts.append(_figure_html(_widths_chart(shown), "Family widths before and after"))
    if len(shown) < len(widths):
        parts.append(f"<p class=\"note\">The chart shows the {len(shown)} most narrowed of {len(widths)} families, "
                     "in graph order.</p>")
    return "\n".join(parts)


def _training_section(metrics: Sequence[dict]) -> str:
    series = [(key, label) for key, label in (("loss", "Loss"), ("group_sparsity", "Group sparsity"),
                                                ("lr", "Learning rate"))
              if any(isinstance(r.get(key), (int, float)) for r in metrics)]
    if not series:
        return ""
    return "\n".join(["<h2>Training</h2>", _figure_html(_training_chart(metrics, series), "Training curves"),
                      f"<p class=\"note\">{len(metrics)} logged steps, up to step {int(metrics[-1]['step'])}.</p>"])


def _erased_section(report: dict) -> str:
    erased = report.get("erased")
    if erased is None:
        erased = [{"merge": name} for name in report.get("regions_erased", [])]
    if not erased:
        return "<h2>Erased blocks</h2>\n<p>No block was erased whole.</p>"
    keys = [k for k in ("merge", "entry", "ops", "params", "flops") if any(k in r for r in erased)]
    heads = {"merge": "merges into", "entry": "entry", "ops": "ops", "params": "params", "flops": "FLOPs"}
    rows = [[f"{r[k]:,}" if isinstance(r.get(k), int) else str(r.get(k, "")) for k in keys] for r in erased]
    numeric = tuple(i for i, k in enumerate(keys) if k in ("ops", "params", "flops"))
    return _table(f"Erased blocks ({len(erased)})", [heads[k] for k in keys], rows, numeric=numeric,
                  names=tuple(i for i, k in enumerate(keys) if k in ("merge", "entry")))


def _calibration_section(report: dict) -> str:
    """With calibration data: how blocks were ranked, and a causal LM's loss before and after."""
    calibration = report.get("calibration")
    if not calibration:
        return ""
    lines = ["<h2>Calibration</h2>",
             (f"<p>{_e(calibration['rows'])} rows of {_e(Path(str(calibration['source'])).name)} scored the model; "
              f"{_e(calibration['held_out_rows'])} were held out.</p>")]
    if calibration.get("erase_criterion"):
        lines.append(f"<p>Blocks were erased by {_e(calibration['erase_criterion'])}.</p>")
    if calibration.get("group_criterion"):
        lines.append(f"<p>Channels and heads were ranked by {_e(calibration['group_criterion'])}.</p>")
    loss = calibration.get("lm_loss")
    if loss:
        rows = [["next-token loss (nats)", f"{loss['dense']:.4f}", f"{loss['compact']:.4f}"],
                ["perplexity", f"{math.exp(loss['dense']):.4g}", f"{math.exp(loss['compact']):.4g}"]]
        lines.append(_table("Language-model loss on the held-out rows", ["", "original", "pruned"], rows,
                            numeric=(1, 2)))
    return "\n".join(lines)


def _cric_section(report: dict) -> str:
    """HESSO-CRIC (run --optimizer hesso-cric): what its measurements cost and which groups they rescued
    (groups saliency alone would have zeroed that the measured loss kept)."""
    cric = report.get("cric")
    if not cric:
        return ""
    cycles = cric.get("cycles", [])
    head = (f"<h2>CRIC: groups rescued by measured loss</h2>\n<p>{cric.get('evaluations', 0)} loss evaluations "
            f"({cric.get('forward_batches', 0)} held-in batches, budget {cric.get('budget', 0)})"
            + (f", {len(cycles)} cycles ({cric.get('cycle_steps', 0)} training steps, their training discarded)"
               if cycles else "")
            + f"; reference loss {cric.get('reference_loss', float('nan')):.4g}, with every prunable group zeroed "
              f"{cric.get('dead_loss', float('nan')):.4g} (the unit of a trial's rise; a collapse rises more than "
              f"{cric.get('collapse', float('nan')):g} of them).</p>")
    if cric.get("unprobed"):
        head += f"<p class=\"note\">Left unprobed by the budget: {_e(', '.join(cric['unprobed']))}.</p>"
    rescued = cric.get("rescued", {})
    rows = [[family, f"{len(groups):,}", ", ".join(map(str, groups))] for family, groups in rescued.items()]
    rows += [[f"region {r}", "1", "whole block"] for r in cric.get("rescued_regions", [])]
    if cric.get("caveat"):
        head += f"<p class=\"note\">{_e(cric['caveat'][0].upper() + cric['caveat'][1:])}.</p>"
    if not rows:
        return head + "<p>No group was rescued: the measured loss agreed with saliency.</p>"
    return head + _table(f"Rescued ({sum(int(r[1].replace(',', '')) for r in rows)})", ["family", "groups", "indices"],
                         rows, numeric=(1,), names=(0,))


def _frozen_section(report: dict) -> str:
    frozen = report.get("frozen")
    if frozen is None:
        return ""
    if not frozen:
        return "<h2>Frozen families</h2>\n<p>Every family is prunable.</p>"
    rows = [[f["family"], f.get("kind", ""), f"{f.get('size', 0):,}", _Html(_reasons(f.get("reasons", [])))]
            for f in frozen]
    return _table(f"Frozen families ({len(frozen)}) and why", ["family", "kind", "groups", "reasons"], rows,
                  numeric=(2,), names=(0,), lines=(3,))


_SHOWN_REASONS = 3


def _reasons(reasons: Sequence[str]) -> str:
    """One reason a line; past the first few, the rest fold into a <details> (no script needed), so a
    family frozen at twenty places does not push the rest of the table off the screen."""
    shown = "\n".join(_e(r) for r in reasons[:_SHOWN_REASONS])
    rest = reasons[_SHOWN_REASONS:]
    if not rest:
        return shown
    return (f"{shown}<details><summary>{len(rest)} more</summary>{chr(10).join(_e(r) for r in rest)}"
            "</details>")


class _Html(str):
    """Table cell text that is already HTML (escaped where it holds data)."""


# ---------------------------------------------------------------------- charts (matplotlib, inline SVG)
def _figure_html(svg: str, title: str) -> str:
    return f"<figure aria-label=\"{_e(title)}\">{svg}</figure>"


def _new_figure(width: float, height: float):
    """A matplotlib Figure without pyplot (no global figure registry, no GUI backend chosen)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _svg(figure, title: str) -> str:
    """The figure as an inline <svg> element: text stays text (svg.fonttype none, so it is crisp and
    searchable), ids are salted by the title so several charts on one page never share one, and the
    XML prolog, DOCTYPE, metadata and namespace URLs are dropped: HTML5 parsers put <svg> in the SVG
    namespace themselves, and the page must name no URL at all."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": title}):
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text.replace("<svg", f"<svg role=\"img\" aria-label=\"{_e(title)}\"", 1).replace(
        ">", f"><title>{_e(title)}</title>", 1)


def _style(axes) -> None:
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)
    axes.grid(axis="both", color="#edf2f7", linewidth=0.8)
    axes.set_axisbelow(True)


def _cost_chart(bars: Sequence[tuple[str, float, float, str]]) -> str:
    """One small panel per quantity: the original's bar beside the compact model's, with the change."""
    figure = _new_figure(2.2 * len(bars) + 0.4, 2.6)
    for index, (label, before, after, unit) in enumerate(bars):
        axes = figure.add_subplot(1, len(bars), index + 1)
        _style(axes)
        axes.grid(axis="x", visible=False)
        axes.bar([0, 1], [before, after], color=[_ORIGINAL, _COMPACT], width=0.6)
        axes.set_xticks([0, 1], ["original", "compact"])
        axes.set_title(label, fontsize=9)
        axes.set_ylim(0, max(before, after, 1e-12) * 1.22)
        for x, value in ((0, before), (1, after)):
            text = f"{value:.3f} {unit}" if unit else _short(value)
            axes.text(x, value, text, ha="center", va="bottom", fontsize=8)
        if before:
            axes.text(0.5, 0.97, f"{100 * (after - before) / before:+.1f}%", transform=axes.transAxes,
                      ha="center", va="top", fontsize=9, color=_COMPACT if after <= before else _ACCENT,
                      fontweight="bold")
        axes.yaxis.set_major_formatter(_short_formatter(unit))
    figure.suptitle("Cost before and after", fontsize=11)
    return _svg(figure, "Cost before and after")


def _widths_chart(widths: Sequence[dict]) -> str:
    """Horizontal bars in graph order, each family's width as a share of its own original width (light:
    the original, 100%; dark: what is kept), labelled with the counts. On one absolute axis a family of
    4 heads would vanish beside one of 512 channels."""
    count = len(widths)
    figure = _new_figure(9.0, 1.0 + 0.24 * count)
    axes = figure.add_subplot(1, 1, 1)
    _style(axes)
    axes.grid(axis="y", visible=False)
    positions = list(range(count))
    kept = [100 * w["after"] / w["before"] if w["before"] else 100.0 for w in widths]
    axes.barh(positions, [100] * count, color=_ORIGINAL, height=0.75, label="before")
    axes.barh(positions, kept, color=_COMPACT, height=0.75, label="after")
    for y, w in zip(positions, widths):
        unit = " heads" if w.get("kind") == "head" else ""
        label = f"{w['after']}/{w['before']}{unit}" + (" (block erased)" if w.get("erased") else "")
        axes.text(101, y, label, va="center", fontsize=7, color=_ACCENT if w.get("erased") else "#2d3748")
    axes.set_yticks(positions, [_middle_cut(w["family"], 42) for w in widths], fontsize=7)
    axes.invert_yaxis()  # graph order top to bottom, as one reads the model
    axes.set_xlim(0, 125)
    axes.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
    axes.set_xlabel("width kept, as a share of the original (labels: groups kept / groups before)", fontsize=8)
    # above the bars, beside the title: inside the axes it would cover the widest families
    axes.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=8, frameon=False)
    axes.set_title("Family widths before and after", fontsize=11, loc="left")
    return _svg(figure, "Family widths before and after")


def _training_chart(metrics: Sequence[dict], series: Sequence[tuple[str, str]]) -> str:
    """Loss, group sparsity and learning rate against the step, one panel each."""
    figure = _new_figure(9.0, 2.6)
    for index, (key, label) in enumerate(series):
        axes = figure.add_subplot(1, len(series), index + 1)
        _style(axes)
        points = [(r["step"], r[key]) for r in metrics if isinstance(r.get(key), (int, float))
                  and math.isfinite(r[key])]
        axes.plot([p[0] for p in points], [p[1] for p in points], color=_COMPACT, linewidth=1.5)
        axes.set_title(label, fontsize=9)
        axes.set_xlabel("step", fontsize=8)
        if key == "group_sparsity":
            axes.set_ylim(0, 1)
        if key == "loss" and points and min(p[1] for p in points) > 0 and \
                max(p[1] for p in points) / min(p[1] for p in points) > 100:
            axes.set_yscale("log")  # a distillation loss falls by decades
    figure.suptitle("Training", fontsize=11)
    return _svg(figure, "Training curves")


def _short_formatter(unit: str):
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:g}" if unit else _short(value))


# ---------------------------------------------------------------------- text
def _table(title: str, heads: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = (),
           names: Sequence[int] = (), lines: Sequence[int] = ()) -> str:
    """A table; columns by index: `numeric` right-aligned, `names` (value and op names) monospace,
    `lines` keep the line breaks of their text (one reason a line)."""
    def cell(tag: str, index: int, text: str) -> str:
        css = ("num" if index in numeric else "" if tag == "th" else
               "name" if index in names else "lines" if index in lines else "")
        inner = text if isinstance(text, _Html) else _e(text)
        return f"<{tag}{f' class={chr(34)}{css}{chr(34)}' if css else ''}>{inner}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(heads))
    body = "\n".join("<tr>" + "".join(cell("td", i, c if isinstance(c, _Html) else str(c)) for i, c in enumerate(row))
                     + "</tr>" for row in rows)
    caption = f"<h2>{_e(title)}</h2>\n" if title else ""
    return f"{caption}<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short(value: float) -> str:
    """11,689,512 → '11.7M': the size a reader compares at a glance (tables hold the exact figure)."""
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def _change(before: float, after: float) -> str:
    return f"{100 * (after - before) / before:+.1f}%" if before else ""


def _metric(value) -> str:
    if not isinstance(value, (int, float)):
        return ""
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3g}"


def _middle_cut(text: str, width: int) -> str:
    """A long value name cut in the middle, where exporters repeat themselves, keeping both ends."""
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + "…" + text[-(width - 1 - half):]


__all__ = ["render", "write_html"]
