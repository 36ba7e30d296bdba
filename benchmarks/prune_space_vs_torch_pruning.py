"""Dependency analysis speed: onnxprune's prune-space against Torch-Pruning's DependencyGraph.

For each architecture (hand-written torch modules, standard widths, 224x224 input, and torchvision's
own resnet18, mobilenet_v2 and vit_b_16) the script builds the model with a fixed seed, exports it to
ONNX in a temporary directory (not timed), and measures, side by side in one process, single-threaded
(torch.set_num_threads(1), OMP_WAIT_POLICY=PASSIVE: torch's spinning OpenMP threads inflated a
2-thread Torch-Pruning 4-25x on a shared 2-core machine) and interleaved run by run (medians and minima):

* onnxprune: ``onnxprune.load(path)`` + ``AnalysisManager(graph).get("prune-space")``, fresh each
  repeat (best and median), then ``compact_graph`` for a selection that removes the first
  ``size // 4`` groups of every prunable family (best and median), and the number of families /
  prunable families;
* Torch-Pruning: ``tp.DependencyGraph().build_dependency(model, example_inputs=x)`` followed by
  ``list(dg.get_all_groups(ignored_layers=[classifier]))`` (best and median) and the number of groups.
  The classifier is ignored, as in Torch-Pruning's own examples; onnxprune likewise keeps the
  model's output width (its last family is frozen as a graph output).

Then scaling with depth: transformer encoders (the ViT block, hidden 384, 6 heads, MLP 1536,
sequence 197) with 6 and 24 blocks, and the ratio T(24)/T(6) for both tools (goal for onnxprune:
at most 4.4x; linear is 4x).

Setup (a venv of its own, so nothing else is disturbed) and the exact command:

    python3 -m venv /tmp/venv_tp && . /tmp/venv_tp/bin/activate
    pip install torch==2.13.0 torch-pruning && pip install -e ".[cpu]"
    python benchmarks/prune_space_vs_torch_pruning.py --repeat 5

``--models resnet18,vit_b16`` picks a subset (names: resnet18, resnet50, mobilenet_v2, densenet121,
vit_b16, tv_resnet18, tv_mobilenet_v2, tv_vit_b_16); ``--no-scaling`` skips the depth experiment; ``--show-frozen`` lists every frozen family.
Without ``torch_pruning`` importable, its columns are skipped with a message.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter

# torch's OpenMP threads spin-wait between ops; on a shared 2-core machine a 2-thread Torch-Pruning
# run measured 4-25x slower than with one thread (resnet18: 984 ms against 38 ms). Both tools run
# single-threaded (onnxprune's analysis is), and spinning is off in case --threads raises it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from onnxprune.passes.compact import compact_graph  # noqa: E402
from torch import nn  # noqa: E402

import onnxprune  # noqa: E402
from onnxprune.passmanager import AnalysisManager  # noqa: E402
from onnxprune.prepare import prepare  # noqa: E402
from onnxprune.space import Selection  # noqa: E402

try:
    import torch_pruning as tp
except ImportError:  # the Torch-Pruning columns are skipped
    tp = None

SEED = 0


# --------------------------------------------------------------------------------------------------
# Models (torchvision-equivalent structure, written out by hand)
# --------------------------------------------------------------------------------------------------

def conv_bn(cin, cout, k, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = conv_bn(cin, width, 3, stride)
        self.conv2 = conv_bn(width, cout, 3, act=None)
        self.downsample = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = conv_bn(cin, width, 1)
        self.conv2 = conv_bn(width, width, 3, stride)
        self.conv3 = conv_bn(width, cout, 1, act=None)
        self.downsample = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for i, (blocks, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            for b in range(blocks):
                stages.append(block(cin, width, 2 if b == 0 and i > 0 else 1))
                cin = width * block.expansion
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), conv_bn(hidden, cout, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))  # expand t, channels c, repeats n, first stride s

    def __init__(self, num_classes=1000):
        super().__init__()
        layers, cin = [conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        x = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(x)))


class DenseBlock(nn.Module):
    def __init__(self, layers, cin, growth, bn_size):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth, bn_size) for i in range(layers))

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet(nn.Module):
    def __init__(self, growth=32, blocks=(6, 12, 24, 16), init=64, bn_size=4, num_classes=1000):
        super().__init__()
        layers, c = [nn.Conv2d(3, init, 7, 2, 3, bias=False), nn.BatchNorm2d(init), nn.ReLU(inplace=True),
                     nn.MaxPool2d(3, 2, 1)], init
        for i, n in enumerate(blocks):
            layers.append(DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i != len(blocks) - 1:  # transition: BN-ReLU-1x1 conv halving channels-AvgPool
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False),
                           nn.AvgPool2d(2, 2)]
                c //= 2
        layers.append(nn.BatchNorm2d(c))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(F.relu(self.features(x)), 1)
        return self.classifier(torch.flatten(x, 1))


class Attention(nn.Module):
    """Multi-head self-attention written out: q/k/v Linear, Reshape to heads, Transpose, softmax."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q = self.q(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2)  # [B, H, N, D]
        k = self.k(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2)
        v = self.v(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2)
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim), dim=-1)
        ctx = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, self.heads * self.head_dim)
        return self.proj(ctx)


class Block(nn.Module):
    """Pre-LN transformer encoder block (ViT)."""

    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, mlp), nn.Linear(mlp, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """ViT-B/16-like: 16x16 patch Conv, class token, learned position embedding, pre-LN blocks."""

    def __init__(self, depth=12, dim=768, heads=12, mlp=3072, image=224, patch=16, num_classes=1000):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B, 196, dim]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


class Encoder(nn.Module):
    """A stack of ViT blocks on token input [B, seq, dim], final LayerNorm, head on the class token."""

    def __init__(self, depth, dim=384, heads=6, mlp=1536, num_classes=1000):
        super().__init__()
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.blocks(x))[:, 0])


IMAGE = (1, 3, 224, 224)
#: name -> (builder, example input shape, classifier attribute)
MODELS = {
    "resnet18": (lambda: ResNet(BasicBlock, (2, 2, 2, 2)), IMAGE, "fc"),
    "resnet50": (lambda: ResNet(Bottleneck, (3, 4, 6, 3)), IMAGE, "fc"),
    "mobilenet_v2": (MobileNetV2, IMAGE, "classifier.1"),
    "densenet121": (DenseNet, IMAGE, "classifier"),
    "vit_b16": (ViT, IMAGE, "head"),
}
SCALING = {f"encoder{d}": (lambda d=d: Encoder(d), (1, 197, 384), "head") for d in (6, 24)}


def _torchvision(name: str):
    def make():
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
        from exports import import_torchvision

        return import_torchvision().models.get_model(name, weights=None)
    return make


#: torchvision's own models beside the hand-written ones (their attention exposes heads or not, as it is)
TORCHVISION = {"tv_resnet18": (_torchvision("resnet18"), IMAGE, "fc"),
               "tv_mobilenet_v2": (_torchvision("mobilenet_v2"), IMAGE, "classifier.1"),
               "tv_vit_b_16": (_torchvision("vit_b_16"), IMAGE, "heads.head")}
MODELS.update(TORCHVISION)


def build(name: str, table: dict) -> tuple[nn.Module, torch.Tensor, nn.Module]:
    """Model (eval mode) with fixed-seed weights, random norm affines/statistics, its input, its classifier.

    Norm layers get random parameters: default ones/zeros would be deduplicated by the exporter into
    one initializer shared by many layers, coupling unrelated channels on the ONNX side."""
    builder, shape, classifier = table[name]
    torch.manual_seed(SEED)
    model = builder()
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    x = torch.randn(shape, generator=gen)
    return model.eval(), x, model.get_submodule(classifier)


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------

def export_onnx(model: nn.Module, x: torch.Tensor, path: str) -> float:
    """TorchScript export, opset 17, no constant folding; returns seconds (reported, not compared)."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), x, path, dynamo=False, opset_version=17, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.PRESERVE)
    return time.perf_counter() - start


def timed(fn, *args):
    """(seconds, result) of fn(*args), after a garbage collection."""
    gc.collect()
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def quarter_selection(space) -> Selection:
    """The first size // 4 groups of every prunable family (~25% of the groups)."""
    return Selection({f.id: tuple(range(f.size // 4)) for f in space.prunable if f.size // 4})


def onnxprune_space(path: str):
    """What is timed for onnxprune: load the file, prepare it as the commands do (fold constant weights,
    untie exporter-shared initializers), run prune-space (with its shapes and cost analyses)."""
    graph = onnxprune.load(path)
    prepare(graph)
    am = AnalysisManager(graph)
    return graph, am, am.get("prune-space")


def onnxprune_row(analysis: list, compact: list, space, selection, report) -> dict:
    """onnxprune's figures for one model."""
    return {"analysis": analysis, "compact": compact, "families": len(space.families),
            "prunable": len(space.prunable),
            "heads": sum(f.kind == "head" for f in space.prunable), "pruned_groups": selection.group_count,
            "params": (report.parameters_before, report.parameters_after),
            "frozen": [(f.name, f.reasons[0] if f.reasons else "?") for f in space.families if not f.prunable]}


def torch_pruning_groups(model: nn.Module, x: torch.Tensor, classifier: nn.Module) -> list:
    """What is timed for Torch-Pruning: trace the dependency graph, list every group."""
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=x, verbose=False)
    return list(dg.get_all_groups(ignored_layers=[classifier]))


def measure(name: str, table: dict, repeat: int, tmp: str) -> dict:
    """Build, export and measure one model with both tools, runs interleaved (onnxprune, then
    Torch-Pruning, `repeat` times) so a slow moment of the machine hits both alike; errors are kept."""
    model, x, classifier = build(name, table)
    row = {"name": name, "params": sum(p.numel() for p in model.parameters())}
    path = os.path.join(tmp, f"{name}.onnx")
    row["export"] = export_onnx(model, x, path)
    row["onnx_mb"] = os.path.getsize(path) / 2**20
    analysis, compact, tp_runs = [], [], []
    for _ in range(repeat):
        if "op_error" not in row:
            try:
                seconds, (graph, am, space) = timed(onnxprune_space, path)
                analysis.append(seconds)
                selection = quarter_selection(space)
                seconds, report = timed(compact_graph, graph, space, selection, am.get("shapes"))
                compact.append(seconds)
                row["op"] = onnxprune_row(analysis, compact, space, selection, report)
                del graph, am
            except Exception:  # noqa: BLE001 - a benchmark reports the failure and goes on
                row["op_error"] = traceback.format_exc()
        if tp is not None and "tp_error" not in row:
            try:
                seconds, groups = timed(torch_pruning_groups, model, x, classifier)
                tp_runs.append(seconds)
                row["tp"] = {"analysis": tp_runs, "groups": len(groups)}
            except Exception:  # noqa: BLE001
                row["tp_error"] = traceback.format_exc()
    os.remove(path)
    print(f"  measured {name}: {summary_line(row)}", file=sys.stderr, flush=True)
    return row


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------

def best_median(times) -> str:
    return f"{min(times):7.3f} {statistics.median(times):7.3f}"


def summary_line(row: dict) -> str:
    op = f"onnxprune {min(row['op']['analysis']):.3f}s" if "op" in row else "onnxprune ERROR"
    tpc = f"torch-pruning {min(row['tp']['analysis']):.3f}s" if "tp" in row else ""
    return f"export {row['export']:.1f}s, {op} {tpc}"


def print_table(rows: list[dict]) -> None:
    head = (f"{'model':<13} {'params':>7} {'onnx':>6} | {'prune-space (s)':>15} {'compact (s)':>15} "
            f"{'fam':>4} {'prun':>4} {'hd':>3} {'cut':>5} | {'Torch-Pruning (s)':>15} {'groups':>6} | {'TP/op':>5}")
    print(head)
    print(f"{'':<13} {'(M)':>7} {'(MB)':>6} | {'best  median':>15} {'best  median':>15} {'':>4} {'':>4} "
          f"{'':>3} {'':>5} | {'best  median':>15} {'':>6} |")
    print("-" * len(head))
    for row in rows:
        line = f"{row['name']:<13} {row['params'] / 1e6:7.1f} {row['onnx_mb']:6.0f} | "
        op = row.get("op")
        if op:
            before, after = op["params"]
            line += (f"{best_median(op['analysis'])} {best_median(op['compact'])} {op['families']:4d} "
                     f"{op['prunable']:4d} {op['heads']:3d} {100 * (1 - after / before):4.0f}% | ")
        else:
            line += f"{'ERROR (see below)':<51} | "
        tpr = row.get("tp")
        if tpr:
            line += f"{best_median(tpr['analysis'])} {tpr['groups']:6d} | "
            line += f"{min(tpr['analysis']) / min(op['analysis']):5.2f}" if op else ""
        else:
            line += f"{'skipped' if tp is None else 'ERROR':>22} |"
        print(line)
    print("\nprune-space = onnxprune.load + prepare + AnalysisManager(graph).get('prune-space'); compact = compact_graph "
          "removing size//4 groups of each prunable family;\nfam/prun/hd = families / prunable families / prunable head families; cut = "
          "share of parameters compact removed; Torch-Pruning = build_dependency + list(get_all_groups);\n"
          "TP/op = best Torch-Pruning time / best onnxprune prune-space time.")


def print_scaling(rows: dict) -> None:
    print("\nScaling with depth (ViT blocks, hidden 384, 6 heads, MLP 1536, sequence 197), best times:")
    short, deep = rows["encoder6"], rows["encoder24"]
    for label, key in (("onnxprune prune-space", "op"), ("Torch-Pruning", "tp")):
        if key not in short or key not in deep:
            print(f"  {label:<22} {'skipped' if key == 'tp' and tp is None else 'ERROR'}")
            continue
        t6, t24 = min(short[key]["analysis"]), min(deep[key]["analysis"])
        goal = f"  (goal <= 4.4x: {'met' if t24 / t6 <= 4.4 else 'NOT met'})" if key == "op" else ""
        print(f"  {label:<22} T(6) = {t6:.3f}s  T(24) = {t24:.3f}s  T(24)/T(6) = {t24 / t6:.2f}x{goal}")
    if "op" in short and "op" in deep:
        t6c, t24c = min(short["op"]["compact"]), min(deep["op"]["compact"])
        print(f"  {'onnxprune compact':<22} T(6) = {t6c:.3f}s  T(24) = {t24c:.3f}s  T(24)/T(6) = {t24c / t6c:.2f}x")


def print_frozen(rows: list[dict], show_all: bool) -> None:
    print("\nFrozen families (count x first reason):")
    for row in rows:
        if "op" not in row:
            continue
        frozen = row["op"]["frozen"]
        print(f"  {row['name']}: {len(frozen)} frozen")
        if show_all:
            for name, reason in frozen:
                print(f"    {name}: {reason}")
        else:
            for reason, count in Counter(reason for _, reason in frozen).most_common():
                print(f"    {count:3d} x {reason}")


def print_errors(rows: list[dict]) -> None:
    for row in rows:
        for key, tool in (("op_error", "onnxprune"), ("tp_error", "Torch-Pruning")):
            if key in row:
                print(f"\n{tool} failed on {row['name']}:\n{row[key]}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repeats per measurement (best and median)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    parser.add_argument("--no-scaling", action="store_true", help="skip the 6- vs 24-block encoder experiment")
    parser.add_argument("--show-frozen", action="store_true", help="list every frozen family with its reason")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for Torch-Pruning (default 1, as "
                        "onnxprune's single-threaded analysis)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(MODELS)}")

    print(f"torch {torch.__version__}, onnxprune {onnxprune.__version__}, torch-pruning "
          f"{getattr(tp, '__version__', '?') if tp else 'not installed'}, threads {torch.get_num_threads()}, "
          f"repeat {args.repeat}, seed {SEED}")
    if tp is None:
        print("torch_pruning is not importable: Torch-Pruning columns are skipped (pip install torch-pruning).")
    with tempfile.TemporaryDirectory(prefix="onnxprune-bench-") as tmp:
        rows = [measure(name, MODELS, args.repeat, tmp) for name in names]
        scaling = {} if args.no_scaling else {n: measure(n, SCALING, args.repeat, tmp) for n in SCALING}
    print()
    print_table(rows + list(scaling.values()))
    if scaling:
        print_scaling(scaling)
    print_frozen(rows + list(scaling.values()), args.show_frozen)
    print_errors(rows + list(scaling.values()))


if __name__ == "__main__":
    main()
