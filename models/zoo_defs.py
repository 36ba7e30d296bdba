"""Model definitions for the onnxprune model zoo.

Every model is a small ``torch.nn.Module`` whose exported ONNX graph exercises
one structural pattern a structured-pruning tool has to understand.  The
classes are deliberately written out by hand (no torchvision, no
``nn.MultiheadAttention``) so that the exported graph is predictable.

``build_zoo.py`` (next to this file) builds, exports and verifies them.
"""

import math

import torch
from torch import nn


def conv_bn_relu(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    """Conv (no bias) -> BatchNorm -> activation, the usual CNN unit."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        act(),
    )


class MLP(nn.Module):
    """Plain multilayer perceptron: Linear-ReLU-Linear-ReLU-Linear on [N, 64].

    Exercises: chains of Gemm ops (2-D Linear), pruning the output units of a
    Gemm (weight rows + bias) and the matching input columns of the next Gemm.
    """

    input_shape = (64,)

    def __init__(self, d_in=64, hidden=(128, 64), n_out=10):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden[0])
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden[1], n_out)

    def forward(self, x):
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


class VGG(nn.Module):
    """VGG-style CNN: stacks of Conv-BatchNorm-ReLU with MaxPool, then a classifier.

    Exercises: Conv -> BatchNormalization -> Relu chains (BN must be pruned
    together with its producing Conv's output channels), MaxPool pass-through,
    and the Conv -> Flatten -> Gemm boundary, where pruning one channel removes
    a contiguous block of H*W (= 4*4) input columns of the Gemm.  The
    classifier contains a Dropout, which must disappear in the eval-mode export.
    """

    input_shape = (3, 32, 32)

    def __init__(self, widths=(16, 32, 64), n_out=10):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [conv_bn_relu(cin, w), conv_bn_relu(w, w), nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(widths[-1] * 4 * 4, n_out)  # 32 / 2**3 = 4

    def forward(self, x):
        return self.fc(self.dropout(self.flatten(self.features(x))))


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN + shortcut, Add, ReLU.

    The shortcut is the identity when shape is preserved, else a 1x1 conv+BN
    projection (stride ``stride``).
    """

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-style network: stem, three BasicBlocks, global pool, Linear.

    Exercises: residual Add, which ties the channels of both Add inputs into
    one pruning group (block1's identity shortcut ties its conv2 to the stem;
    block2/3 use a strided 1x1 conv+BN projection shortcut, so their conv2 and
    the projection form a group), GlobalAveragePool -> Flatten -> Gemm.
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        self.stem = conv_bn_relu(3, 16)
        self.block1 = BasicBlock(16, 16, stride=1)  # identity shortcut
        self.block2 = BasicBlock(16, 32, stride=2)  # projection shortcut
        self.block3 = BasicBlock(32, 64, stride=2)  # projection shortcut
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, n_out)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual block.

    1x1 expand conv-BN-ReLU6, 3x3 depthwise conv (groups=channels)-BN-ReLU6,
    1x1 linear projection conv-BN; identity skip Add only when stride == 1 and
    cin == cout.
    """

    def __init__(self, cin, cout, stride, expand=4):
        super().__init__()
        hidden = cin * expand
        self.use_skip = stride == 1 and cin == cout
        self.expand = conv_bn_relu(cin, hidden, k=1, act=nn.ReLU6)
        self.depthwise = conv_bn_relu(hidden, hidden, k=3, stride=stride, groups=hidden, act=nn.ReLU6)
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.use_skip else out


class MobileNetV2(nn.Module):
    """MobileNetV2-style network built from inverted residual blocks.

    Exercises: depthwise Conv (group == channels), whose channels cannot be
    pruned on their own but follow the expand conv that feeds them (the
    expand->depthwise->project hidden channels are one group, and the
    depthwise ``group`` attribute must be rewritten); Clip (ReLU6); skip Add
    present in some blocks (blocks 1 and 3) and absent in others (blocks 2
    and 4, stride 2 / channel change).
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        self.stem = conv_bn_relu(3, 16, act=nn.ReLU6)
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, stride=1),  # skip
            InvertedResidual(16, 24, stride=2),  # no skip
            InvertedResidual(24, 24, stride=1),  # skip
            InvertedResidual(24, 32, stride=2),  # no skip
        )
        self.head = conv_bn_relu(32, 128, k=1, act=nn.ReLU6)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, n_out)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.flatten(self.pool(x)))


class DenseLayer(nn.Module):
    """DenseNet layer: BN-ReLU-Conv3x3 producing ``growth`` channels, Concat'ed to its input."""

    def __init__(self, cin, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(self.relu(self.bn(x)))], dim=1)


class Transition(nn.Module):
    """DenseNet transition: BN-ReLU-Conv1x1 (channel reduction)-AvgPool2."""

    def __init__(self, cin, cout):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(self.relu(self.bn(x))))


class DenseNet(nn.Module):
    """DenseNet-style network: stem, dense block, transition, dense block, head.

    Exercises: channel Concat, where a tensor's channels are the union of
    several producers' channels at offsets, and pre-activation BN that sits
    *after* the Concat (BN and the consumer Conv's input channels must be
    sliced by the concatenated index, each slice coming from a different
    producer).  Growth rate 8, 4 layers per block.
    """

    input_shape = (3, 32, 32)

    def __init__(self, growth=8, n_layers=4, n_out=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        c = 16
        block1 = []
        for _ in range(n_layers):
            block1.append(DenseLayer(c, growth))
            c += growth
        self.block1 = nn.Sequential(*block1)  # 16 -> 48 channels
        self.trans = Transition(c, c // 2)  # 48 -> 24, 32x32 -> 16x16
        c = c // 2
        block2 = []
        for _ in range(n_layers):
            block2.append(DenseLayer(c, growth))
            c += growth
        self.block2 = nn.Sequential(*block2)  # 24 -> 56 channels
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, n_out)

    def forward(self, x):
        x = self.block2(self.trans(self.block1(self.stem(x))))
        return self.fc(self.flatten(self.pool(self.relu(self.bn(x)))))


class Transformer(nn.Module):
    """One hand-written transformer encoder block (post-LN) plus a classifier head.

    Input [N, 16, 64] (sequence 16, hidden 64), 4 heads of size 16.
    q/k/v Linear -> reshape [N, S, H, D] -> transpose [N, H, S, D] ->
    Q K^T / sqrt(D) -> Softmax -> @ V -> transpose back -> reshape [N, S, 64]
    -> output Linear -> residual Add -> LayerNorm -> FFN Linear(64->256)-GELU-
    Linear(256->64) -> residual Add -> LayerNorm -> mean over sequence ->
    Linear(64->10).

    Exercises: 3-D Linear (MatMul + Add with a transposed weight), attention
    head pruning through Reshape/Transpose (the head count appears as a
    literal in the Reshape shape tensors), FFN hidden-unit pruning (Linear ->
    GELU (Erf decomposition) -> Linear), LayerNormalization and residual Adds
    tying the hidden dimension, ReduceMean over the sequence axis.

    The two reshapes intentionally use the two idioms torch code uses:
    splitting heads uses the traced batch size ``x.shape[0]`` (exported as a
    Shape->Gather->Unsqueeze->Concat subgraph feeding Reshape), merging heads
    uses ``-1`` (exported as a constant shape tensor [-1, 16, 64]).  Both keep
    the batch axis dynamic.
    """

    input_shape = (16, 64)

    def __init__(self, seq=16, hidden=64, heads=4, ffn=256, n_out=10):
        super().__init__()
        self.seq, self.hidden, self.heads, self.head_dim = seq, hidden, heads, hidden // heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden)
        self.ffn1 = nn.Linear(hidden, ffn)
        self.gelu = nn.GELU()
        self.ffn2 = nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, n_out)

    def forward(self, x):
        n = x.shape[0]
        q = self.q(x).reshape(n, 16, 4, 16).transpose(1, 2)  # [N, H, S, D]
        k = self.k(x).reshape(n, 16, 4, 16).transpose(1, 2)
        v = self.v(x).reshape(n, 16, 4, 16).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)  # [N, H, S, S]
        attn = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(attn, v).transpose(1, 2).reshape(-1, 16, 64)  # [N, S, hidden]
        x = self.ln1(x + self.o(ctx))
        x = self.ln2(x + self.ffn2(self.gelu(self.ffn1(x))))
        return self.fc(x.mean(dim=1))


class DigitsCNN(nn.Module):
    """Small CNN for scikit-learn's 8x8 digits (the trained quick-start model).

    Conv(1->16)-BN-ReLU, Conv(16->32)-BN-ReLU, MaxPool2, Conv(32->32)-BN-ReLU,
    GlobalAveragePool, Flatten, Linear(32->10).  Exercises: pruning a model
    with real trained weights, so accuracy before/after pruning is meaningful.
    """

    input_shape = (1, 8, 8)

    def __init__(self, n_out=10):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 16),
            conv_bn_relu(16, 32),
            nn.MaxPool2d(2),
            conv_bn_relu(32, 32),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, n_out)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))
