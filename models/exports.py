"""Models as people bring them: fresh torchvision and `transformers` models exported by torch's exporters.

Unlike `build_zoo.py`, nothing here is cleaned up after export: these files are what a user's
`torch.onnx.export` call writes (Identity-fed de-duplicated initializers, Shape-computed reshape
targets, constant-folded subgraphs), with random weights and no downloads. Tests and benchmarks build
them on demand into a folder of their choice:

    python models/exports.py OUT_DIR [--only resnet18 ...] [--exporter torchscript|dynamo] [--opset 17]
        [--training] [--no-constant-folding]

Recipes: `export(module, example, path, exporter=..., opset=..., training=...)`. `training=True`
exports in training mode (BatchNormalization with training_mode=1 and its statistics outputs);
`False` is eval mode, where the TorchScript exporter folds BatchNorm into Conv unless
`constant_folding=False`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings
from pathlib import Path


def import_torchvision():
    """Import torchvision's Python models even where its compiled ops do not load.

    The registry's torchvision wheel is built against torch's CUDA libraries; beside the CPU build of
    torch its `_C` extension fails to load and the fake-kernel registrations for its detection ops
    (nms, roi_align) raise at import. Those ops are not used by any classification model, so the
    registrations are skipped while torchvision imports."""
    import torch.library

    try:
        import torchvision
        return torchvision
    except RuntimeError:
        pass
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    original = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision
    finally:
        torch.library.register_fake = original
    return torchvision


def export(module, example: tuple, path: str | Path, *, exporter: str = "torchscript", opset: int = 17,
           training: bool = False, constant_folding: bool = True, input_names=("input",),
           dynamic_batch: bool = True) -> Path:
    """Export `module` on `example` to `path` as a user would (default exporter options otherwise).
    `constant_folding=False` with `training=False` is the recipe for a model to train afterwards: the
    TorchScript exporter then keeps BatchNormalization as its own node (and de-duplicates equal
    initializers through Identity ops, which is what `untie` undoes)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.train(training)
    names = list(input_names)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            axes = {n: {0: "batch"} for n in [*names, "output"]} if dynamic_batch else None
            mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
            torch.onnx.export(module, example, str(path), dynamo=False, opset_version=opset, input_names=names,
                              output_names=["output"], dynamic_axes=axes, training=mode,
                              do_constant_folding=constant_folding)
        elif exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            shapes = [{0: batch} for _ in names] if dynamic_batch else None  # positional: forward's arg names vary
            program = torch.onnx.export(module, example, dynamo=True, opset_version=opset, input_names=names,
                                        output_names=["output"], dynamic_shapes=shapes, external_data=False)
            program.save(str(path))
        else:
            raise ValueError(f"unknown exporter {exporter!r} (torchscript, dynamo)")
    return path


def bn_cnn(batch_norm: bool = True):
    """A 5-conv BatchNorm CNN for 28x28 grey images (Fashion-MNIST), as a user writes one.
    `batch_norm=False` is what the dynamo exporter writes of it (BatchNorm folded into biased convs)."""
    from torch import nn

    def block(cin, cout, stride=1):
        if not batch_norm:
            return [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU()]
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(*block(1, 16), *block(16, 16), *block(16, 32, 2), *block(32, 32), *block(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


#: torchvision classification models: name -> input size.
TORCHVISION = {
    "resnet18": 224, "resnet50": 224, "mobilenet_v2": 224, "mobilenet_v3_small": 224, "efficientnet_b0": 224,
    "regnet_y_400mf": 224, "mnasnet0_5": 224, "squeezenet1_0": 224, "shufflenet_v2_x0_5": 224,
    "densenet121": 224, "vgg11_bn": 224, "convnext_tiny": 224, "vit_b_16": 224, "swin_t": 224,
}


def torchvision_model(name: str):
    """A fresh (random-weight, seeded) torchvision model and its example input."""
    import torch

    torchvision = import_torchvision()
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    size = TORCHVISION[name]
    return model, (torch.randn(1, 3, size, size),)


def build(names, out_dir: Path, exporter: str, opset: int, training: bool = False,
          constant_folding: bool = True) -> list[Path]:
    """Export each named model into `out_dir` (`bn_cnn` or a torchvision name)."""
    import torch

    written = []
    for name in names:
        if name == "bn_cnn":
            torch.manual_seed(0)
            model, example = bn_cnn(), (torch.randn(2, 1, 28, 28),)
        else:
            model, example = torchvision_model(name)
        suffix = f"_{exporter}{opset}" + ("_train" if training else "") + ("" if constant_folding else "_nofold")
        written.append(export(model, example, out_dir / f"{name}{suffix}.onnx", exporter=exporter, opset=opset,
                              training=training, constant_folding=constant_folding))
        print(f"wrote {written[-1]}")
    return written


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--only", nargs="*", default=None, help="bn_cnn and/or torchvision names")
    ap.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--training", action="store_true", help="export in training mode")
    ap.add_argument("--no-constant-folding", action="store_true", help="keep BatchNorm nodes (TorchScript, eval)")
    args = ap.parse_args(argv)
    build(args.only or ["bn_cnn", *TORCHVISION], args.out, args.exporter, args.opset, args.training,
          not args.no_constant_folding)


if __name__ == "__main__":
    main()
