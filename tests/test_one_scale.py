"""The one-shot ranking puts channels, heads and blocks on one scale (importance share per cost share),
so a target can trade a block against channels; prune says per family what it removed."""

from __future__ import annotations

import numpy as np
import pytest
from onnxprune.passes.importance import normalize, on_one_scale

import onnxprune
from onnxprune.app.summary import removed_lines
from onnxprune.errors import UserError
from onnxprune.facts import Outcome, VerifyReport
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.space import Selection

from .conftest import ZOO
from .test_cli import run_cli


def test_a_family_of_equal_costs_scores_as_hesso_normalises():
    importance = np.array([1.0, 2.0, 3.0, 6.0])
    assert np.allclose(on_one_scale(importance, np.full(4, 7.0)), normalize(importance, "mean"))


def test_a_block_saving_twice_the_cost_at_the_same_share_scores_half():
    scores = on_one_scale(np.array([1.0, 1.0, 2.0, 5.0]), np.array([1.0, 2.0, 2.0, 0.0]))
    assert scores[1] == pytest.approx(scores[0] / 2) and scores[2] == pytest.approx(scores[0])
    assert scores[3] == np.inf  # saves nothing: never worth erasing


def _kinds(space, selection: Selection) -> set[str]:
    return {space.family(f).kind for f, groups in selection.pruned.items() if groups}


def test_ranked_blocks_trade_against_heads_and_channels():
    """On the ViT, one ranking removes heads, channels and a block together and still lands on the FLOPs
    target; compact ≡ masked. Counting blocks instead (erase exactly 2) leaves no channel to prune."""
    graph = onnxprune.load(ZOO / "vit.onnx")
    before = AnalysisManager(graph).get("cost")
    am = AnalysisManager(graph)
    space = am.get("prune-space")
    PassManager("select{ratio=0.5,by=flops,erase=2,erase_mode=ranked}").run(graph, am)
    selection, outcome = am.fact(Selection), am.fact(Outcome)
    PassManager("compact,cleanup,verify").run(graph, am)
    assert am.fact(VerifyReport).ok
    assert _kinds(space, selection) == {"head", "channel"}
    assert len(selection.erased) in (1, 2)
    assert abs(outcome.share - 0.5) <= 0.005
    assert outcome.removed == before.flops - AnalysisManager(graph).get("cost").flops

    counted = onnxprune.load(ZOO / "vit.onnx")
    am = AnalysisManager(counted)
    PassManager("select{ratio=0.5,by=flops,erase=2}").run(counted, am)
    assert len(am.fact(Selection).erased) == 2 and "channel" not in _kinds(space, am.fact(Selection))


def test_ranked_blocks_need_a_cost_to_rank_by(tmp_path, capsys):
    graph = onnxprune.load(ZOO / "vit.onnx")
    with pytest.raises(UserError, match="erase_mode=ranked needs by=params or by=flops"):
        PassManager("select{ratio=0.5,erase=2,erase_mode=ranked}").run(graph, AnalysisManager(graph))
    code, _, err = run_cli(capsys, "prune", ZOO / "vit.onnx", "-o", tmp_path / "o.onnx", "--ratio", "0.5", "--erase", "1",
                           "--erase-mode", "ranked", "--no-latency", "--no-report")
    assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_removed_lines_name_each_family_and_block():
    sections = {"widths": [{"family": "layer1.conv", "kind": "channel", "before": 64, "after": 32},
                           {"family": "attn.0", "kind": "head", "before": 8, "after": 6},
                           {"family": "whole", "kind": "channel", "before": 16, "after": 16},
                           {"family": "ffn.1", "kind": "channel", "before": 32, "after": 0, "erased": True}],
                "erased": [{"id": 3, "merge": "Add_5", "ops": 12, "params": 1234}]}
    assert removed_lines(sections) == ["layer1.conv: 64 -> 32 channels", "attn.0: 8 -> 6 heads",
                                       "ffn.1: 32 -> 0 channels (inside an erased block)",
                                       "erased: block 3, Add_5 (12 ops, 1,234 params)"]
    many = {"widths": [{"family": f"f{i}", "kind": "channel", "before": 4, "after": 2} for i in range(5)]}
    assert removed_lines(many, limit=2)[-1] == "... and 3 more families narrowed (the report lists every family)"


def test_prune_prints_per_family_what_it_removed(tmp_path, capsys):
    code, out, err = run_cli(capsys, "prune", ZOO / "vit.onnx", "-o", tmp_path / "o.onnx", "--ratio", "0.5",
                             "--by", "flops", "--erase", "2", "--erase-mode", "ranked", "--round-to", "1",
                             "--no-latency", "--no-report")
    assert code == 0, err
    lines = [line.strip() for line in out.splitlines()]
    assert any(line.endswith(" heads") and " -> " in line for line in lines), out
    assert any(line.endswith(" channels") and " -> " in line for line in lines), out
    assert any(line.startswith("erased: block ") for line in lines), out
