"""Models as people bring them: fresh torchvision and `transformers` models exported by torch's exporters.

Unlike `build_zoo.py`, nothing here is cleaned up after export: these files are what a user's
`torch.onnx.export` call writes (Identity-fed de-duplicated initializers, Shape-computed reshape
targets, constant-folded subgraphs), with random weights and no downloads. Tests and benchmarks build
them on demand into a folder of their choice:

    python models/exports.py OUT_DIR [--only resnet18 ...] [--exporter torchscript|dynamo] [--opset 17]
        [--training] [--no-constant-folding]
    python models/exports.py OUT_DIR --attention [NAME ...] | --decoders [NAME ...]  [--exporter ...] [--opset ...]
    python models/exports.py OUT_DIR --decoder-steps [NAME ...] [--opset ...]

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
           dynamic_batch: bool = True, dynamic_axes: dict[int, str] | None = None) -> Path:
    """Export `module` on `example` to `path` as a user would (default exporter options otherwise).
    `constant_folding=False` with `training=False` is the recipe for a model to train afterwards: the
    TorchScript exporter then keeps BatchNormalization as its own node (and de-duplicates equal
    initializers through Identity ops, which is what `untie` undoes). `dynamic_axes` (axis -> name, the
    same for every input and the output) replaces the dynamic batch: `{0: "batch", 1: "sequence"}` is
    how language models are exported."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.train(training)
    names = list(input_names)
    if dynamic_axes is None:
        dynamic_axes = {0: "batch"} if dynamic_batch else {}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            axes = {n: dict(dynamic_axes) for n in [*names, "output"]} if dynamic_axes else None
            mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
            torch.onnx.export(module, example, str(path), dynamo=False, opset_version=opset, input_names=names,
                              output_names=["output"], dynamic_axes=axes, training=mode,
                              do_constant_folding=constant_folding)
        elif exporter == "dynamo":
            dims = {axis: torch.export.Dim(name, min=1 if axis == 0 else 2, max=1024 if axis == 0 else 64)
                    for axis, name in dynamic_axes.items()}
            shapes = [dict(dims) for _ in names] if dims else None  # positional: forward's arg names vary
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
    return model, (torch.randn(2, 3, size, size),)  # batch 2: torch.export specialises a traced batch of 1


# ---------------------------------------------------------------------- attention models
# Tiny configurations (hidden 32, 4 heads of 8, one layer), random seeded weights, no downloads:
# the exported graphs have the structure of the full-size models at a size tests can commit.
HIDDEN, HEADS, FFN, VOCAB, SEQUENCE = 32, 4, 64, 64, 8


def _self_attention():
    """`nn.MultiheadAttention` as people call it for self-attention (batch first, no weights returned):
    one fused in-projection of 3 x hidden, heads split inside torch's functional attention."""
    import torch
    from torch import nn

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(HIDDEN, HEADS, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    return SelfAttention(), (torch.randn(2, SEQUENCE, HIDDEN),), ("input",), {0: "batch", 1: "sequence"}


def _encoder_layer():
    """`nn.TransformerEncoderLayer` (post-LN, ReLU FFN, batch first) in eval mode, inside a model (the
    TorchScript exporter cannot trace the layer as the top module: it turns `is_causal` into a tensor)."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(HIDDEN, HEADS, FFN, dropout=0.0, batch_first=True)

        def forward(self, x):
            return self.layer(x)

    return Encoder(), (torch.randn(2, SEQUENCE, HIDDEN),), ("input",), {0: "batch", 1: "sequence"}


def _vit():
    """torchvision's VisionTransformer on 32x32 images: patches 8x8 (16 tokens + class token), one block."""
    import torch

    torchvision = import_torchvision()
    model = torchvision.models.vision_transformer.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=HEADS, hidden_dim=HIDDEN, mlp_dim=FFN, num_classes=10)
    return model, (torch.randn(2, 3, 32, 32),), ("input",), {0: "batch"}


def _swin_block():
    """torchvision's SwinTransformerBlock on an 8x8 map (NHWC): 4x4 windows shifted by 2, relative
    position bias per head, the shifted-window mask."""
    import torch

    import_torchvision()
    from torchvision.models.swin_transformer import SwinTransformerBlock

    block = SwinTransformerBlock(HIDDEN, HEADS, window_size=[4, 4], shift_size=[2, 2], mlp_ratio=2.0)
    return block, (torch.randn(2, 8, 8, HIDDEN),), ("input",), {0: "batch"}


def _hf_wrapper(model):
    """Wrap a `transformers` base model so that the export has plain tensor inputs and one output (the
    last hidden state), without a KV cache."""
    from torch import nn

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask=None):
            kwargs = {"use_cache": False} if "use_cache" in model.forward.__code__.co_varnames else {}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state

    return Wrapper()


def _gpt2():
    """`transformers` GPT-2 (fused c_attn Conv1D of 3 x hidden split into q, k, v; causal mask; sdpa)."""
    import torch

    import_torchvision()  # transformers imports torchvision when it is installed
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(n_embd=HIDDEN, n_head=HEADS, n_layer=1, n_inner=FFN, vocab_size=VOCAB, n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    ids = torch.randint(0, VOCAB, (2, SEQUENCE))
    return _hf_wrapper(GPT2Model(config)), (ids,), ("input_ids",), {0: "batch", 1: "sequence"}


def _gpt2_cache():
    """GPT-2 exported with its KV cache as outputs (the last hidden state, then the first layer's keys
    and values [batch, heads, sequence, head_dim]), as a first decoding step is exported: the cache is
    the model's interface, so its head count must stay."""
    from torch import nn

    model, example, names, axes = _gpt2()
    base = model.model

    class WithCache(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = base

        def forward(self, input_ids):
            out = self.model(input_ids=input_ids, use_cache=True)
            layer = out.past_key_values.layers[0]
            return out.last_hidden_state, layer.keys, layer.values

    return WithCache(), example, names, axes


def _llama(attention: str = "sdpa"):
    """`transformers` Llama: grouped-query attention (4 query heads, 2 key/value heads), rotary
    position embedding, RMSNorm, SwiGLU, causal mask; `attention` is the attention implementation
    ("eager" repeats key/value heads with expand + reshape: the TorchScript exporter cannot convert
    sdpa with `enable_gqa`, so that is what TorchScript users pick)."""
    import torch

    import_torchvision()
    from transformers import LlamaConfig, LlamaModel

    config = LlamaConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, num_key_value_heads=2, intermediate_size=FFN,
                         num_hidden_layers=1, vocab_size=VOCAB, max_position_embeddings=64,
                         attn_implementation=attention)
    ids = torch.randint(0, VOCAB, (2, SEQUENCE))
    return _hf_wrapper(LlamaModel(config)), (ids,), ("input_ids",), {0: "batch", 1: "sequence"}


def _causal_lm(family: str):
    """A `transformers` causal LM with its head (logits [batch, sequence, vocabulary] out), 2 layers,
    grouped-query attention (4 query heads, 2 key/value heads), eager attention: `llama` (SwiGLU),
    `qwen2` (q/k/v biases), `phi3` (fused qkv and gate_up projections, split at run time)."""
    import torch

    import_torchvision()
    import transformers

    classes = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
               "phi3": ("Phi3Config", "Phi3ForCausalLM")}
    config_class, model_class = (getattr(transformers, name) for name in classes[family])
    config = config_class(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=2,
                          num_attention_heads=HEADS, num_key_value_heads=2, max_position_embeddings=64,
                          attn_implementation="eager", pad_token_id=0)
    ids = torch.randint(0, VOCAB, (2, SEQUENCE))
    return logits_only(model_class(config)), (ids,), ("input_ids",), {0: "batch", 1: "sequence"}


def logits_only(model):
    """A transformers causal LM as a module from token ids to logits (what its export computes)."""
    from torch import nn

    class Logits(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            # the default cache (not exported) keeps transformers off its packed-sequence check, whose
            # aten::diff the TorchScript exporter cannot convert
            return self.model(input_ids=input_ids).logits

    return Logits()


def _causal_lm_step(family: str):
    """One decoding step of a `_causal_lm` model with its KV cache as the interface, as a generation
    loop calls it: input_ids [batch, sequence], attention_mask [batch, past + sequence] and per layer
    past_key_i / past_value_i [batch, kv_heads, past, head_dim] in; logits and per layer
    present_key_i / present_value_i [batch, kv_heads, past + sequence, head_dim] out. Returns the
    module, example inputs, input names, output names and per-name dynamic axes."""
    import torch
    from torch import nn
    from transformers import DynamicCache

    lm = _causal_lm(family)[0].model
    layers = lm.config.num_hidden_layers
    kv_heads = lm.config.num_key_value_heads
    head_dim = lm.config.hidden_size // lm.config.num_attention_heads

    class Step(nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = lm

        def forward(self, input_ids, attention_mask, *past):
            cache = DynamicCache()
            for i in range(layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=True)
            present = [t for layer in out.past_key_values.layers[:layers] for t in (layer.keys, layer.values)]
            return (out.logits, *present)

    past_names = [f"past_{kv}_{i}" for i in range(layers) for kv in ("key", "value")]
    out_names = ["logits", *(f"present_{kv}_{i}" for i in range(layers) for kv in ("key", "value"))]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total"},
            "logits": {0: "batch", 1: "sequence"}}
    axes.update({n: {0: "batch", 2: "past"} for n in past_names})
    axes.update({n: {0: "batch", 2: "total"} for n in out_names[1:]})
    batch, sequence, past_length = 2, 3, 4
    example = (torch.randint(0, VOCAB, (batch, sequence)), torch.ones(batch, past_length + sequence, dtype=torch.int64),
               *(torch.randn(batch, kv_heads, past_length, head_dim) for _ in past_names))
    return Step(), example, ["input_ids", "attention_mask", *past_names], out_names, axes


def export_decoder_step(name: str, out_dir: Path, opset: int = 17) -> Path:
    """Export the decoding step `name` (a key of DECODER_STEPS) with torch's TorchScript exporter as
    `NAME_torchscript{opset}.onnx`. (The dynamo exporter is not offered: torch.export does not trace
    transformers' DynamicCache built from tensor inputs.)"""
    import torch

    torch.manual_seed(0)
    model, example, input_names, output_names, axes = DECODER_STEPS[name]()
    _perturb_constant_parameters(model)
    path = Path(out_dir) / f"{name}_torchscript{opset}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=axes)
    return path


def _bert():
    """`transformers` BERT encoder with an attention mask input (separate q, k, v Linears; sdpa)."""
    import torch

    import_torchvision()
    from transformers import BertConfig, BertModel

    config = BertConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, num_hidden_layers=1, intermediate_size=FFN,
                        vocab_size=VOCAB, max_position_embeddings=64)
    ids = torch.randint(0, VOCAB, (2, SEQUENCE))
    mask = torch.ones(2, SEQUENCE, dtype=torch.int64)
    model = _hf_wrapper(BertModel(config, add_pooling_layer=False))
    return model, (ids, mask), ("input_ids", "attention_mask"), {0: "batch", 1: "sequence"}


#: Attention models: name -> builder returning (module, example inputs, input names, dynamic axes).
ATTENTION = {"mha": _self_attention, "encoder_layer": _encoder_layer, "vit": _vit, "swin_block": _swin_block,
             "gpt2": _gpt2, "gpt2_cache": _gpt2_cache, "llama": _llama, "llama_eager": lambda: _llama("eager"), "bert": _bert}
#: Decoder-only causal LMs with their heads (built with `--decoders` into models/exports/decoders/).
DECODERS = {"llama_lm": lambda: _causal_lm("llama"), "qwen2_lm": lambda: _causal_lm("qwen2"),
            "phi3_lm": lambda: _causal_lm("phi3")}
#: Their decoding steps with the KV cache as inputs and outputs (`--decoder-steps`, into
#: models/exports/decoder_steps/).
DECODER_STEPS = {"llama_step": lambda: _causal_lm_step("llama"), "qwen2_step": lambda: _causal_lm_step("qwen2")}


#: Models whose TorchScript export keeps the traced sequence length: torch's functional multi-head
#: attention reshapes keys and values with `k.shape[0]`, which the tracer records as the constant 8,
#: so a dynamic sequence axis exports a model that fails at any other length. These are exported the
#: way that works, with a dynamic batch only.
TORCHSCRIPT_STATIC_SEQUENCE = {"mha", "encoder_layer"}


def attention_model(name: str):
    """A fresh attention model (seeded random weights) with its example inputs, input names and dynamic axes.
    Parameters that start constant (zero biases, unit norm scales, torchvision ViT's zero classifier)
    get seeded noise, as training would give them: with a zero classifier every output is its bias, and
    a test comparing outputs could not fail."""
    import torch

    torch.manual_seed(0)
    model, *rest = {**ATTENTION, **DECODERS}[name]()
    _perturb_constant_parameters(model)
    return (model, *rest)


def _perturb_constant_parameters(model) -> None:
    """Give parameters that start constant seeded noise (see `attention_model`)."""
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() and bool((parameter == parameter.reshape(-1)[0]).all()):
                parameter.add_(0.1 * torch.randn_like(parameter))


def build_attention(names, out_dir: Path, exporter: str, opset: int) -> list[Path]:
    """Export each named attention model into `out_dir` as `NAME_EXPORTEROPSET.onnx` (eval mode, dynamic
    batch, and dynamic sequence for sequence models)."""
    written = []
    for name in names:
        model, example, input_names, axes = attention_model(name)
        if exporter == "torchscript" and name in TORCHSCRIPT_STATIC_SEQUENCE:
            axes = {0: axes[0]}
        path = out_dir / f"{name}_{exporter}{opset}.onnx"
        try:
            written.append(export(model, example, path, exporter=exporter, opset=opset, input_names=input_names,
                                  dynamic_axes=axes))
        except Exception as exc:  # noqa: BLE001 (an exporter failing on one model is a finding, not the end)
            print(f"failed {path.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            continue
        print(f"wrote {written[-1]}")
    return written


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
    ap.add_argument("--attention", nargs="*", default=None, metavar="NAME",
                    help=f"export attention models instead (none named: all of {', '.join(ATTENTION)})")
    ap.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--training", action="store_true", help="export in training mode")
    ap.add_argument("--no-constant-folding", action="store_true", help="keep BatchNorm nodes (TorchScript, eval)")
    ap.add_argument("--decoders", nargs="*", default=None, metavar="NAME",
                    help=f"export causal LMs instead (none named: all of {', '.join(DECODERS)})")
    ap.add_argument("--decoder-steps", nargs="*", default=None, metavar="NAME",
                    help=f"export decoding steps with their KV cache (TorchScript; none named: all of "
                         f"{', '.join(DECODER_STEPS)})")
    args = ap.parse_args(argv)
    if args.decoder_steps is not None:
        for name in args.decoder_steps or list(DECODER_STEPS):
            print(f"wrote {export_decoder_step(name, args.out, args.opset)}")
        return
    if args.decoders is not None:
        build_attention(args.decoders or list(DECODERS), args.out, args.exporter, args.opset)
        return
    if args.attention is not None:
        build_attention(args.attention or list(ATTENTION), args.out, args.exporter, args.opset)
        return
    build(args.only or ["bn_cnn", *TORCHVISION], args.out, args.exporter, args.opset, args.training,
          not args.no_constant_folding)


if __name__ == "__main__":
    main()
