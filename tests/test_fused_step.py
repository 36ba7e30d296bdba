"""DHSPG's compiled step (`optim/fused.py`, `Dhspg(compiled=True)`): the same trajectory as the eager
step, on a space where Conv weights carry two families (two views of one tensor) and BN vectors one."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from onnxprune.optim import BaseSettings, Dhspg, DhspgSettings
from onnxprune.optim.fused import fusable

from .test_optim import drive, layout_of, random_grads, small_space

COMPILER = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


@pytest.mark.slow  # torch.compile builds its kernels (about half a minute on one CPU thread)
@pytest.mark.skipif(COMPILER is None, reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_step_follows_the_eager_one(dtype):
    _, space, params, stats = small_space()
    params = {k: v.to(dtype) for k, v in params.items()}
    layout = layout_of(space, params, stats)
    rng = np.random.default_rng(3)
    grads_seq = [{k: v.to(dtype) for k, v in random_grads(params, rng).items()} for _ in range(10)]
    settings = DhspgSettings(target_group_sparsity=0.4, lmbda=0.5, partition_step=2, half_space_project_steps=2)
    runs = {}
    for compiled in (False, True):
        x = {k: v.clone() for k, v in params.items()}
        grads = {k: torch.zeros_like(v) for k, v in params.items()}
        optimizer = Dhspg(x, grads, layout, BaseSettings("sgd", momentum=0.9), settings, compiled=compiled)
        assert (optimizer.fused is not None) == compiled
        drive(optimizer, grads, grads_seq, 0.05)
        runs[compiled] = (x, optimizer.zero.clone(), optimizer.base.state)
    (eager, eager_zero, eager_buf), (fused, fused_zero, fused_buf) = runs[False], runs[True]
    assert torch.equal(eager_zero, fused_zero) and eager_zero.any()  # the projection zeroed the same groups
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    for k in params:
        torch.testing.assert_close(fused[k], eager[k], rtol=tolerance, atol=tolerance)
        torch.testing.assert_close(fused_buf[k], eager_buf[k], rtol=tolerance, atol=tolerance)


def test_a_base_optimizer_the_kernels_do_not_cover_says_so():
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    with pytest.warns(UserWarning, match="this base optimizer's steps run eager"):
        optimizer = Dhspg(params, grads, layout, BaseSettings("adam"), DhspgSettings(), compiled=True)
    assert optimizer.fused is None


@pytest.mark.parametrize("settings, covered", [(BaseSettings("sgd", momentum=0.9), True),
                                               (BaseSettings("sgd", momentum=0.0), False),
                                               (BaseSettings("sgd", momentum=0.9, nesterov=True), False),
                                               (BaseSettings("sgd", momentum=0.9, weight_decay=1e-4), False),
                                               (BaseSettings("adam"), False)])
def test_other_base_optimizers_stay_eager(settings, covered):
    assert fusable(settings) == covered


def test_a_step_that_cannot_be_compiled_runs_eager(monkeypatch):
    """No C++ compiler (or any build failure): one warning, and the step is the eager one, unchanged."""
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    rng = np.random.default_rng(4)
    grads_seq = [random_grads(params, rng) for _ in range(6)]
    settings = DhspgSettings(target_group_sparsity=0.4, lmbda=0.5, partition_step=2)
    runs = []
    for compiled in (False, True):
        x = {k: v.clone() for k, v in params.items()}
        grads = {k: torch.zeros_like(v) for k, v in params.items()}
        optimizer = Dhspg(x, grads, layout, BaseSettings("sgd", momentum=0.9), settings, compiled=compiled)
        if compiled:
            def broken(*args, **kwargs):
                raise RuntimeError("no working C++ compiler found")
            monkeypatch.setattr(optimizer.fused, "_update", broken)  # the last kernel built: the others ran
            with pytest.warns(UserWarning, match="the eager step runs instead"):
                drive(optimizer, grads, grads_seq, 0.05)
            assert optimizer.fused is None
        else:
            drive(optimizer, grads, grads_seq, 0.05)
        runs.append(x)
    for k in params:
        assert torch.equal(runs[0][k], runs[1][k])
