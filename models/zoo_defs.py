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


class FashionCNN(nn.Module):
    """CNN for 28x28 grayscale images (Fashion-MNIST), untrained: the sparse-training benchmark's model.

    Conv(1->32)-BN-ReLU, MaxPool2, Conv(32->64)-BN-ReLU, MaxPool2, Conv(64->128)-BN-ReLU,
    GlobalAveragePool, Flatten, Linear(128->10); about 7.5M multiply-adds per image.
    """

    input_shape = (1, 28, 28)

    def __init__(self, n_out=10):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 32),
            nn.MaxPool2d(2),
            conv_bn_relu(32, 64),
            nn.MaxPool2d(2),
            conv_bn_relu(64, 128),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, n_out)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


class FashionResNet(nn.Module):
    """Residual CNN for 28x28 grayscale images, untrained: the erasing benchmark's model.

    Conv(1->32)-BN-ReLU, MaxPool2 (14x14), two identity BasicBlocks at 32 channels, a strided
    projection BasicBlock to 64 channels (7x7), two identity BasicBlocks at 64, GlobalAveragePool,
    Linear(64->10): six erasable residual branches, one projection shortcut.
    """

    input_shape = (1, 28, 28)

    def __init__(self, n_out=10):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(1, 32), nn.MaxPool2d(2))
        self.blocks = nn.Sequential(BasicBlock(32, 32), BasicBlock(32, 32), BasicBlock(32, 64, stride=2),
                                    BasicBlock(64, 64), BasicBlock(64, 64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, n_out)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.blocks(self.stem(x)))))


# =========================================================================== extended zoo
#
# The models below extend the zoo with the structural patterns of common
# architecture families (tiny widths, random weights).  Models with inputs
# other than one float tensor ``input`` declare ``inputs`` (name, shape
# without the batch axis, dtype) and ``sample_inputs(batch, gen)``.


def make_divisible(v, divisor=8):
    """Round a channel count to a multiple of ``divisor`` (as MobileNet/EfficientNet code does)."""
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck: 1x1 reduce-BN-ReLU, 3x3 (stride)-BN-ReLU, 1x1 expand (x4)-BN, shortcut, Add, ReLU.

    The stride sits on the 3x3 conv (ResNet v1.5).  The shortcut is the
    identity when shape is preserved, else a strided 1x1 conv+BN projection.
    """

    expansion = 4

    def __init__(self, cin, mid, stride=1):
        super().__init__()
        cout = mid * self.expansion
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()
        self.relu3 = nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


class ResNet50ish(nn.Module):
    """ResNet-50-style network with bottleneck blocks (expansion 4), tiny widths.

    stem 3x3 conv 3->16, bottleneck(16 -> 8 -> 32, projection, stride 1),
    bottleneck(32 -> 8 -> 32, identity), bottleneck(32 -> 16 -> 64,
    projection, stride 2), bottleneck(64 -> 16 -> 64, identity), global pool,
    Linear.

    Exercises: bottleneck channels (the 1x1-reduce and 3x3 outputs are free
    to prune inside a block) versus the expanded 4x channels, which residual
    Adds tie across consecutive blocks; projection shortcuts both without
    (block 1) and with (block 3) stride.
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        self.stem = conv_bn_relu(3, 16)
        self.layer1 = nn.Sequential(Bottleneck(16, 8), Bottleneck(32, 8))
        self.layer2 = nn.Sequential(Bottleneck(32, 16, stride=2), Bottleneck(64, 16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, n_out)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(self.flatten(self.pool(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: GlobalAveragePool -> 1x1 conv (bias) -> act -> 1x1 conv (bias) -> gate -> Mul.

    ``act``/``gate`` are ReLU/Hardsigmoid for MobileNetV3, SiLU/Sigmoid for
    EfficientNet.  The 1x1 convs have biases (no BatchNorm follows them).
    """

    def __init__(self, channels, squeeze, act=nn.ReLU, gate=nn.Hardsigmoid):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBv3Block(nn.Module):
    """MobileNetV3 inverted residual: [1x1 expand-BN-act], depthwise kxk-BN-act, [SE], 1x1 project-BN, [skip Add].

    The expand conv is absent when ``exp == cin`` (as in MobileNetV3's first
    block); the skip Add is present when stride == 1 and cin == cout.
    """

    def __init__(self, cin, exp, cout, k, stride, use_se, act):
        super().__init__()
        self.use_skip = stride == 1 and cin == cout
        self.expand = conv_bn_relu(cin, exp, k=1, act=act) if exp != cin else nn.Identity()
        self.depthwise = conv_bn_relu(exp, exp, k=k, stride=stride, groups=exp, act=act)
        self.se = SqueezeExcite(exp, make_divisible(exp // 4)) if use_se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.use_skip else out


class MobileNetV3ish(nn.Module):
    """MobileNetV3-style network: inverted residuals with squeeze-excitation and HardSwish.

    stem 3x3/2 conv-BN-HardSwish, four blocks (16->16 dw3x3/2 SE ReLU with
    no expand conv; 16->64->24 dw3x3 ReLU; 24->72->24 dw5x5 SE HardSwish
    with skip; 24->96->40 dw5x5/2 SE HardSwish), 1x1 conv 40->96-BN-HardSwish,
    global pool, Linear(96->128)-HardSwish-Dropout-Linear(128->10).

    Exercises: the SE gate multiplies the depthwise output channel-wise, so
    the SE expand conv's output channels (and biases) belong to the same
    channel group as the expand/depthwise channels, while the SE squeeze
    channels form a group of their own (GlobalAveragePool -> Conv -> Relu ->
    Conv -> HardSigmoid -> Mul); HardSwish/HardSigmoid activations; a 1x1
    conv directly after the GlobalAveragePool.
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        hs = nn.Hardswish
        self.stem = conv_bn_relu(3, 16, stride=2, act=hs)
        self.blocks = nn.Sequential(
            MBv3Block(16, 16, 16, 3, 2, True, nn.ReLU),  # no expand conv, no skip
            MBv3Block(16, 64, 24, 3, 1, False, nn.ReLU),  # no SE, no skip
            MBv3Block(24, 72, 24, 5, 1, True, hs),  # skip
            MBv3Block(24, 96, 40, 5, 2, True, hs),  # no skip
        )
        self.head = conv_bn_relu(40, 96, k=1, act=hs)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(96, 128), hs(), nn.Dropout(0.2), nn.Linear(128, n_out))

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.flatten(self.pool(x)))


class MBConv(nn.Module):
    """EfficientNet MBConv: [1x1 expand-BN-SiLU], depthwise kxk-BN-SiLU, SE (SiLU, Sigmoid), 1x1 project-BN, [skip].

    The SE squeeze width is ``cin // 4`` (computed from the block input, as
    in EfficientNet), not from the expanded width.
    """

    def __init__(self, cin, cout, expand, k, stride):
        super().__init__()
        exp = cin * expand
        self.use_skip = stride == 1 and cin == cout
        self.expand = conv_bn_relu(cin, exp, k=1, act=nn.SiLU) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_relu(exp, exp, k=k, stride=stride, groups=exp, act=nn.SiLU)
        self.se = SqueezeExcite(exp, max(1, cin // 4), act=nn.SiLU, gate=nn.Sigmoid)
        self.project = nn.Sequential(nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.use_skip else out


class EfficientNetish(nn.Module):
    """EfficientNet-style network: MBConv blocks with SE, SiLU activations.

    stem 3x3/2 conv 3->16-BN-SiLU, MBConv(16->16, expand 1, dw3x3, skip),
    MBConv(16->24, expand 4, dw3x3/2), MBConv(24->24, expand 4, dw5x5, skip),
    1x1 conv 24->64-BN-SiLU, global pool, Dropout, Linear.

    Exercises: SiLU exported as x * Sigmoid(x) (Sigmoid -> Mul with the same
    tensor on both sides: an element-wise op whose two inputs are the same
    channel group), SE with SiLU and Sigmoid gating (GlobalAveragePool ->
    Conv -> Sigmoid/Mul -> Conv -> Sigmoid -> Mul), expand-free first block.
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        self.stem = conv_bn_relu(3, 16, stride=2, act=nn.SiLU)
        self.blocks = nn.Sequential(
            MBConv(16, 16, 1, 3, 1),
            MBConv(16, 24, 4, 3, 2),
            MBConv(24, 24, 4, 5, 1),
        )
        self.head = conv_bn_relu(24, 64, k=1, act=nn.SiLU)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(64, n_out)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.dropout(self.flatten(self.pool(x))))


def channel_shuffle(x, groups):
    """ShuffleNet channel shuffle as torchvision writes it: Reshape [N, g, C/g, H, W] -> Transpose -> Reshape back."""
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch, channels, height, width)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit.

    stride 1: split the channels in two halves (chunk -> Split); the first
    half passes through, the second goes through 1x1-BN-ReLU, dw3x3-BN,
    1x1-BN-ReLU; Concat; channel shuffle.
    stride 2: both branches see the whole input (branch1: dw3x3/2-BN,
    1x1-BN-ReLU; branch2 as above with a strided depthwise); Concat; shuffle.
    """

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
                nn.BatchNorm2d(cin),
                nn.Conv2d(cin, half, 1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(),
            )
            b2_in = cin
        else:
            assert cin == cout
            self.branch1 = None
            b2_in = half
        self.branch2 = nn.Sequential(
            nn.Conv2d(b2_in, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(),
            nn.Conv2d(half, half, 3, stride=stride, padding=1, groups=half, bias=False),
            nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(),
        )

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetish(nn.Module):
    """ShuffleNetV2-style network.

    stem 3x3/2 conv 3->24-BN-ReLU, unit(24->48, stride 2), 2 x unit(48, stride 1),
    unit(48->96, stride 2), unit(96, stride 1), 1x1 conv 96->128-BN-ReLU,
    global pool, Linear.

    Exercises: channel Split (the two halves of one tensor go to different
    consumers), Concat of a pass-through half with a branch output, and the
    channel shuffle Reshape [N, 2, C/2, H, W] -> Transpose(perm 0,2,1,3,4)
    -> Reshape [N, C, H, W], which interleaves the channels of the two Concat
    inputs.  The shuffle's shape tensors are computed at run time from
    ``Shape`` (torchvision's ``x.size()`` idiom), so they contain no channel
    literals.
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        self.stem = conv_bn_relu(3, 24, stride=2)
        self.stage2 = nn.Sequential(ShuffleUnit(24, 48, 2), ShuffleUnit(48, 48, 1), ShuffleUnit(48, 48, 1))
        self.stage3 = nn.Sequential(ShuffleUnit(48, 96, 2), ShuffleUnit(96, 96, 1))
        self.head = conv_bn_relu(96, 128, k=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, n_out)

    def forward(self, x):
        x = self.head(self.stage3(self.stage2(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


class InceptionBlock(nn.Module):
    """Inception block: four parallel branches concatenated along channels.

    1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (the "5x5" branch, factorised as in
    Inception v3); 3x3 max pool (stride 1) -> 1x1.  All convs are conv-BN-ReLU.
    """

    def __init__(self, cin, c1, c3r, c3, c5r, c5, cp):
        super().__init__()
        self.b1 = conv_bn_relu(cin, c1, k=1)
        self.b2 = nn.Sequential(conv_bn_relu(cin, c3r, k=1), conv_bn_relu(c3r, c3))
        self.b3 = nn.Sequential(conv_bn_relu(cin, c5r, k=1), conv_bn_relu(c5r, c5), conv_bn_relu(c5, c5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn_relu(cin, cp, k=1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


class Inceptionish(nn.Module):
    """GoogLeNet/Inception-style network.

    stem 3x3 conv 3->16-BN-ReLU, inception(16 -> 8 + 12 + 6 + 6 = 32),
    MaxPool 2, inception(32 -> 16 + 16 + 8 + 8 = 48), global pool, Linear.

    Exercises: one tensor consumed by four branches (the input channels of
    four convs, one behind a MaxPool, tied to one producer), a four-way
    Concat of branches with different depths, and a Concat output feeding
    another multi-branch block.
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        self.stem = conv_bn_relu(3, 16)
        self.inc1 = InceptionBlock(16, 8, 8, 12, 4, 6, 6)
        self.pool1 = nn.MaxPool2d(2)
        self.inc2 = InceptionBlock(32, 16, 12, 16, 6, 8, 8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(48, n_out)

    def forward(self, x):
        x = self.inc2(self.pool1(self.inc1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


class UNetish(nn.Module):
    """Two-level U-Net for dense prediction: output [N, 1, 32, 32].

    encoder: 2 x conv3x3-BN-ReLU (3->8->8, skip1), MaxPool, 2 x (8->16->16,
    skip2), MaxPool, bottleneck 2 x (16->32->32) at 8x8;
    decoder level 2: ConvTranspose2d(32->16, k2, s2, bias) upsampling,
    Concat with skip2 (16+16), 2 x conv-BN-ReLU (32->16->16);
    decoder level 1: Resize (nearest, scale 2), conv-BN-ReLU 16->8, Concat
    with skip1 (8+8), 2 x conv-BN-ReLU (16->8->8);
    head: 1x1 conv 8->1 with bias.

    Exercises: ConvTranspose (weight layout [C_in, C_out, k, k], the reverse
    of Conv), Resize (channel-transparent), skip Concats that join encoder
    and decoder channels, and a 1-channel output head whose output channel
    must never be pruned.
    """

    input_shape = (3, 32, 32)

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(conv_bn_relu(3, 8), conv_bn_relu(8, 8))
        self.enc2 = nn.Sequential(conv_bn_relu(8, 16), conv_bn_relu(16, 16))
        self.mid = nn.Sequential(conv_bn_relu(16, 32), conv_bn_relu(32, 32))
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec2 = nn.Sequential(conv_bn_relu(32, 16), conv_bn_relu(16, 16))
        self.up1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.up1_conv = conv_bn_relu(16, 8)
        self.dec1 = nn.Sequential(conv_bn_relu(16, 8), conv_bn_relu(8, 8))
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        s1 = self.enc1(x)
        s2 = self.enc2(self.pool(s1))
        m = self.mid(self.pool(s2))
        d2 = self.dec2(torch.cat([self.up2(m), s2], dim=1))
        d1 = self.dec1(torch.cat([self.up1_conv(self.up1(d2)), s1], dim=1))
        return self.head(d1)


def conv_bn_silu(cin, cout, k=1, stride=1):
    """YOLOv8 ``Conv``: Conv (no bias) -> BatchNorm -> SiLU."""
    return conv_bn_relu(cin, cout, k=k, stride=stride, act=nn.SiLU)


class YoloBottleneck(nn.Module):
    """YOLOv8 bottleneck: 3x3 Conv-BN-SiLU twice, residual Add when ``shortcut``."""

    def __init__(self, c, shortcut=True):
        super().__init__()
        self.cv1 = conv_bn_silu(c, c, 3)
        self.cv2 = conv_bn_silu(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """YOLOv8 C2f: 1x1 conv to 2c, split into two c-channel halves (Split), n bottlenecks chained
    on the second half, Concat of both halves and every bottleneck output ((2+n)c), 1x1 conv."""

    def __init__(self, c1, c2, n=1, shortcut=True):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = conv_bn_silu(c1, 2 * self.c)
        self.cv2 = conv_bn_silu((2 + n) * self.c, c2)
        self.m = nn.ModuleList(YoloBottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split((self.c, self.c), 1))  # ultralytics' forward_split
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """YOLOv5/v8 SPPF: 1x1 conv to c/2, three chained MaxPool 5x5 stride 1, Concat of all four, 1x1 conv."""

    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = conv_bn_silu(c1, c_)
        self.cv2 = conv_bn_silu(c_ * 4, c2)
        self.m = nn.MaxPool2d(k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Yoloish(nn.Module):
    """YOLOv8-style backbone with a classification head (as in YOLOv8-cls).

    Conv 3x3/2 3->16, Conv 3x3/2 16->32, C2f(32, n=1), Conv 3x3/2 32->64,
    C2f(64, n=2), SPPF(64), 1x1 Conv 64->128, global pool, Linear; every
    Conv is Conv-BN-SiLU.

    Exercises: the C2f Split whose first half only reaches the final
    Concat while the second half also feeds the bottleneck chain (so the
    halves are separate groups, and each bottleneck's residual Add ties its
    output to its input half), multi-input Concats ((2+n) inputs in C2f, 4
    in SPPF), three chained MaxPools whose outputs all feed one Concat (the
    same channels appear four times in it), SiLU as Sigmoid -> Mul.
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        self.backbone = nn.Sequential(
            conv_bn_silu(3, 16, 3, 2),
            conv_bn_silu(16, 32, 3, 2),
            C2f(32, 32, n=1),
            conv_bn_silu(32, 64, 3, 2),
            C2f(64, 64, n=2),
            SPPF(64, 64),
        )
        self.head = conv_bn_silu(64, 128)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, n_out)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.head(self.backbone(x)))))


class RegNetBlock(nn.Module):
    """RegNetX block: 1x1-BN-ReLU, grouped 3x3 (group width ``gw``, stride)-BN-ReLU, 1x1-BN, shortcut, Add, ReLU."""

    def __init__(self, cin, cout, stride, gw=8):
        super().__init__()
        self.a = conv_bn_relu(cin, cout, k=1)
        self.b = conv_bn_relu(cout, cout, k=3, stride=stride, groups=cout // gw)
        self.c = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout))
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.c(self.b(self.a(x))) + self.shortcut(x))


class RegNetish(nn.Module):
    """RegNetX-style network: bottleneck blocks with grouped 3x3 convs (group width 8).

    stem 3x3/2 conv 3->16, stage 1: block(16->24, stride 2, 3 groups),
    stage 2: block(24->48, stride 2, 6 groups), block(48->48, 6 groups),
    global pool, Linear.

    Exercises: grouped Conv with 1 < group < channels: a channel can only be
    pruned together with its group's structure (remove whole groups, or the
    same number of channels from every group so the group count and
    per-group width stay consistent), and the grouped conv's weight is
    [C_out, C_in / group, 3, 3].
    """

    input_shape = (3, 32, 32)

    def __init__(self, n_out=10):
        super().__init__()
        self.stem = conv_bn_relu(3, 16, stride=2)
        self.stage1 = RegNetBlock(16, 24, 2)
        self.stage2 = nn.Sequential(RegNetBlock(24, 48, 2), RegNetBlock(48, 48, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(48, n_out)

    def forward(self, x):
        x = self.stage2(self.stage1(self.stem(x)))
        return self.fc(self.flatten(self.pool(x)))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: dw7x7 conv (bias) -> permute NHWC -> LayerNorm -> Linear 4x -> GELU -> Linear
    -> layer scale (Mul by a learned vector) -> permute NCHW -> residual Add."""

    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        # ConvNeXt initialises the layer scale to 1e-6; a random value keeps the branch visible
        self.gamma = nn.Parameter(torch.empty(dim).uniform_(0.1, 1.0))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)  # [N, H, W, C]
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        y = (self.gamma * y).permute(0, 3, 1, 2)  # [N, C, H, W]
        return x + y


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor, as permute -> LayerNorm -> permute back."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtish(nn.Module):
    """ConvNeXt-style network, two stages.

    stem 4x4/4 conv 3->32 (bias) + LayerNorm, block(32), downsample
    (LayerNorm + 2x2/2 conv 32->64), block(64), global average pool,
    LayerNorm, Linear.

    Exercises: channels-last sections (Transpose to NHWC, LayerNormalization
    and MatMul+Add Linear on the last axis, Transpose back), depthwise 7x7
    conv with bias, a learned per-channel layer-scale Mul, residual Adds on
    NCHW tensors whose channels pass through two Transposes, and Conv with
    bias and no BatchNorm.
    """

    input_shape = (3, 32, 32)

    def __init__(self, dims=(32, 64), n_out=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), ChannelsFirstLayerNorm(dims[0]))
        self.stage1 = ConvNeXtBlock(dims[0])
        self.down = nn.Sequential(ChannelsFirstLayerNorm(dims[0]), nn.Conv2d(dims[0], dims[1], 2, stride=2))
        self.stage2 = ConvNeXtBlock(dims[1])
        self.norm = nn.LayerNorm(dims[1], eps=1e-6)
        self.fc = nn.Linear(dims[1], n_out)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.fc(self.norm(x.mean(dim=(2, 3))))


class ViTBlock(nn.Module):
    """Pre-LN ViT block, timm style: x + attn(LN(x)); x + mlp(LN(x)).

    Attention uses one fused qkv Linear(dim -> 3*dim), reshaped to
    [N, T, 3, heads, head_dim] and permuted to [3, N, heads, T, head_dim].
    """

    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim ** -0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp, dim)

    def attn(self, x):
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [N, heads, T, head_dim]
        a = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, c))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """Vision transformer: 32x32 image, 8x8 patches (16 tokens + class token), dim 64, 4 heads, 2 blocks.

    patch embedding Conv(3->64, k8, s8, bias) -> flatten -> transpose to
    [N, 16, 64]; learned class token [1, 1, 64] expanded to the batch and
    Concat'ed in front; learned positional embedding [1, 17, 64] added;
    2 pre-LN blocks (fused qkv, MLP 64->128->64 with GELU); final LayerNorm;
    the class token (Gather index 0 on the token axis) -> Linear(64->10).

    Exercises: Conv -> Reshape -> Transpose into token layout (patch-embed
    output channels = hidden dim), the hidden dim tied across the class
    token Concat, the positional-embedding Add, every residual Add and every
    LayerNorm; a fused qkv Linear whose output columns are [q | k | v] x
    heads x head_dim, split by Reshape + Transpose + Gather (``unbind``);
    Gather on the token axis before the head.
    """

    input_shape = (3, 32, 32)

    def __init__(self, dim=64, heads=4, mlp=128, depth=2, patch=8, n_out=10):
        super().__init__()
        n_tokens = (32 // patch) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_out)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [N, 16, dim]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x + self.pos_embed)
        return self.head(self.norm(x)[:, 0])


def _token_inputs(batch, gen, seq, vocab):
    return torch.randint(0, vocab, (batch, seq), generator=gen)


class BertLayer(nn.Module):
    """Post-LN BERT encoder layer with separate q/k/v Linears and an additive attention mask."""

    def __init__(self, hidden, heads, inter):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, inter)
        self.act = nn.GELU()
        self.output = nn.Linear(inter, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)

    def split_heads(self, x):
        n, s, _ = x.shape
        return x.view(n, s, self.heads, self.head_dim).permute(0, 2, 1, 3)  # [N, heads, S, head_dim]

    def forward(self, x, mask):
        q, k, v = self.split_heads(self.query(x)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(ctx.shape[0], ctx.shape[1], -1)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.out_norm(x + self.output(self.act(self.intermediate(x))))


class BERT(nn.Module):
    """BERT-style encoder: vocab 100, sequence 16, hidden 64, 4 heads, FFN 128, 2 post-LN layers, pooler.

    Inputs: ``input_ids`` int64 [N, 16] and ``attention_mask`` float [N, 16]
    (1 = attend, 0 = padding).  Word embedding Gather(table, input_ids) +
    position embedding Gather(table, position_ids constant) -> LayerNorm;
    the mask becomes (1 - mask)[:, None, None, :] * -10000, added to the
    attention scores of every head; 2 encoder layers; pooler
    tanh(Linear(hidden state of token 0)) is the output [N, 64].

    Exercises: Gather from embedding tables (the hidden dim is the table's
    column axis), a second int64 input and the broadcast additive mask
    (Unsqueeze -> Sub -> Mul -> Add onto [N, heads, S, S] scores), separate
    q/k/v Linears with head Reshape/Transpose (head count and head size as
    literals), post-LN residual structure, Tanh pooler.
    """

    inputs = (("input_ids", (16,), torch.int64), ("attention_mask", (16,), torch.float32))

    def __init__(self, vocab=100, seq=16, hidden=64, heads=4, inter=128, layers=2):
        super().__init__()
        self.vocab = vocab
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(seq, hidden)
        self.register_buffer("position_ids", torch.arange(seq), persistent=False)
        self.emb_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(hidden, heads, inter) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)

    @staticmethod
    def sample_inputs(batch, gen, vocab=100, seq=16):
        ids = _token_inputs(batch, gen, seq, vocab)
        lengths = torch.randint(1, seq + 1, (batch, 1), generator=gen)
        mask = (torch.arange(seq)[None, :] < lengths).float()
        return ids, mask

    def forward(self, input_ids, attention_mask):
        x = self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids)
        x = self.emb_norm(x)
        mask = (1.0 - attention_mask[:, None, None, :]) * -10000.0
        for layer in self.layers:
            x = layer(x, mask)
        return torch.tanh(self.pooler(x[:, 0]))


class GPTBlock(nn.Module):
    """Pre-LN GPT-2 block: fused c_attn Linear(d -> 3d) split into q/k/v, causal self-attention, tanh-GELU MLP."""

    def __init__(self, d, heads, seq):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.act = nn.GELU(approximate="tanh")
        self.mlp_proj = nn.Linear(4 * d, d)
        self.register_buffer("causal", torch.tril(torch.ones(seq, seq, dtype=torch.bool)), persistent=False)

    def attn(self, x):
        n, s, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q = q.view(n, s, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(n, s, self.heads, self.head_dim).transpose(1, 2)
        v = v.view(n, s, self.heads, self.head_dim).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        scores = scores.masked_fill(~self.causal, float("-inf"))
        y = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).contiguous().view(n, s, d)
        return self.c_proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(self.act(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    """GPT-2-style decoder: vocab 128, sequence 16 (static), d 64, 4 heads, 2 pre-LN blocks, tied LM head.

    Input ``input_ids`` int64 [N, 16]; output logits [N, 16, 128].
    token + position embeddings (Gather), blocks with a fused c_attn
    Linear split into q/k/v (Split), causal mask as a constant
    lower-triangular bool tensor applied with Where (-inf) (``~causal`` is
    folded by the tracer, since the buffer is not persistent),
    tanh-approximated GELU (decomposed: Mul/Add/Tanh), final LayerNorm,
    LM head = MatMul with the transposed token-embedding table (weight
    tying: one initializer is both a Gather table and, through a Transpose,
    a MatMul weight).

    Exercises: Split of a fused Linear output into q/k/v (each third holds
    heads x head_dim columns), causal masking, the tied embedding whose
    hidden axis is pruned once for both uses while its vocab axis (LM head
    output) must stay, decomposed GELU.
    """

    inputs = (("input_ids", (16,), torch.int64),)

    def __init__(self, vocab=128, seq=16, d=64, heads=4, layers=2):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.register_buffer("position_ids", torch.arange(seq), persistent=False)
        self.blocks = nn.Sequential(*[GPTBlock(d, heads, seq) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)

    @staticmethod
    def sample_inputs(batch, gen):
        return (_token_inputs(batch, gen, 16, 128),)

    def forward(self, input_ids):
        x = self.wte(input_ids) + self.wpe(self.position_ids)
        x = self.ln_f(self.blocks(x))
        return torch.nn.functional.linear(x, self.wte.weight)  # tied LM head


class RMSNorm(nn.Module):
    """RMSNorm written out (Llama): x * rsqrt(mean(x^2, -1) + eps) * weight."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] on the last axis (Slice, Neg, Concat)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaBlock(nn.Module):
    """Llama decoder block: RMSNorm -> GQA attention with RoPE -> Add; RMSNorm -> SwiGLU MLP -> Add.

    No biases anywhere.  Keys/values have ``kv_heads`` heads, repeated
    ``heads // kv_heads`` times (Unsqueeze -> Expand -> Reshape, as
    ``repeat_kv`` in transformers) to match the query heads.
    """

    def __init__(self, d, heads, kv_heads, ffn):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d // heads
        self.input_norm = RMSNorm(d)
        self.q_proj = nn.Linear(d, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, d, bias=False)
        self.post_norm = RMSNorm(d)
        self.gate_proj = nn.Linear(d, ffn, bias=False)
        self.up_proj = nn.Linear(d, ffn, bias=False)
        self.act = nn.SiLU()
        self.down_proj = nn.Linear(ffn, d, bias=False)

    def repeat_kv(self, x):
        n, kvh, s, hd = x.shape
        rep = self.heads // self.kv_heads
        return x[:, :, None, :, :].expand(n, kvh, rep, s, hd).reshape(n, kvh * rep, s, hd)

    def attn(self, x, cos, sin, mask):
        n, s, _ = x.shape
        q = self.q_proj(x).view(n, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(n, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(n, s, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = self.repeat_kv(k), self.repeat_kv(v)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        y = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(n, s, -1)
        return self.o_proj(y)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.input_norm(x), cos, sin, mask)
        h = self.post_norm(x)
        return x + self.down_proj(self.act(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    """Llama-style decoder: vocab 128, sequence 16 (static), d 64, 4 query heads / 2 kv heads of 16, 2 blocks.

    Input ``input_ids`` int64 [N, 16]; output logits [N, 16, 128].
    Embedding Gather; per block RMSNorm (Pow, ReduceMean, Add, Sqrt,
    Reciprocal/Div, Mul, Mul by weight), q/k/v projections without bias,
    rotary position embedding (cos/sin tables [16, 16] precomputed as
    constants; rotate_half via Slice, Neg, Concat), grouped-query attention
    (kv heads repeated with Unsqueeze/Expand/Reshape), causal mask built with
    Trilu and added (-1e9), SwiGLU MLP (silu(gate(x)) * up(x) -> down, FFN
    128); final RMSNorm; untied LM head Linear(64 -> 128, no bias).

    Exercises: bias-free Linears (MatMul only), decomposed RMSNorm with a
    learned scale, RoPE (the head dim is split in halves and recombined, so
    head-dim pruning must keep the rotation pairs i and i + head_dim/2
    together), GQA (one kv head serves two query heads, so pruning a kv head
    removes two query heads), SwiGLU (gate and up outputs multiplied
    element-wise: one group).
    """

    inputs = (("input_ids", (16,), torch.int64),)

    def __init__(self, vocab=128, seq=16, d=64, heads=4, kv_heads=2, ffn=128, layers=2, theta=10000.0):
        super().__init__()
        self.seq = seq
        head_dim = d // heads
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(LlamaBlock(d, heads, kv_heads, ffn) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        freqs = torch.outer(torch.arange(seq, dtype=torch.float64), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("rope_cos", emb.cos().float(), persistent=False)  # [S, head_dim]
        self.register_buffer("rope_sin", emb.sin().float(), persistent=False)

    @staticmethod
    def sample_inputs(batch, gen):
        return (_token_inputs(batch, gen, 16, 128),)

    def forward(self, input_ids):
        x = self.embed_tokens(input_ids)
        s = input_ids.shape[1]  # traced from Shape, so the mask is built in the graph (ConstantOfShape -> Trilu)
        mask = torch.triu(torch.full((s, s), -1e9), diagonal=1)
        for layer in self.layers:
            x = layer(x, self.rope_cos, self.rope_sin, mask)
        return self.lm_head(self.norm(x))


class Conv1dAudio(nn.Module):
    """1-D CNN on raw audio-like input [N, 1, 400].

    Conv1d(1->16, k9, s2)-BN1d-ReLU, MaxPool1d 2, Conv1d(16->32, k5)-BN1d-ReLU,
    MaxPool1d 2, Conv1d(32->32, k3)-BN1d-ReLU, global average pool, Linear.

    Exercises: 3-D (N, C, L) Conv / BatchNormalization / MaxPool, whose
    weights have one spatial axis, and a 1-D global pool before the head.
    """

    input_shape = (1, 400)

    def __init__(self, n_out=10):
        super().__init__()

        def unit(cin, cout, k, stride=1):
            return nn.Sequential(nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
                                 nn.BatchNorm1d(cout), nn.ReLU())

        self.features = nn.Sequential(
            unit(1, 16, 9, stride=2), nn.MaxPool1d(2), unit(16, 32, 5), nn.MaxPool1d(2), unit(32, 32, 3)
        )
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, n_out)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


class LSTMNet(nn.Module):
    """Two-layer LSTM (input 16, hidden 32, batch_first) on [N, 20, 16], last time step -> Linear(32->10).

    Exercises: ONNX LSTM (W [1, 4H, I], R [1, 4H, H], B [1, 8H] with the gates
    in ONNX's i, o, f, c order: pruning hidden unit j removes row j of every
    gate block, column j of R and of the next layer's W), two stacked LSTM
    ops, the [S, num_directions, N, H] output layout (Squeeze/Transpose),
    Gather of the last time step.  The zero initial states come from
    ConstantOfShape of [2, N, 32]: the hidden size is a literal in a shape
    tensor.
    """

    input_shape = (20, 16)
    # exported with constant folding: otherwise the exporter reorders the gate blocks (PyTorch i,f,g,o ->
    # ONNX i,o,f,c) with run-time Slice/Concat nodes on the PyTorch weights instead of storing W/R/B
    export_constant_folding = True

    def __init__(self, n_in=16, hidden=32, n_out=10):
        super().__init__()
        self.rnn = nn.LSTM(n_in, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, n_out)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class GRUNet(nn.Module):
    """Bidirectional GRU (input 16, hidden 32, batch_first) on [N, 20, 16], mean over time -> Linear(64->10).

    Exercises: ONNX GRU (gates z, r, h; ``linear_before_reset`` = 1 as
    exported from PyTorch) with ``direction = bidirectional``: weights
    [2, 3H, I], the output [S, 2, N, H] reshaped to [N, S, 2H], so the
    Linear's input columns are [forward units | backward units].
    """

    input_shape = (20, 16)
    # exported with constant folding: otherwise the exporter reorders the gate blocks (PyTorch i,f,g,o ->
    # ONNX i,o,f,c) with run-time Slice/Concat nodes on the PyTorch weights instead of storing W/R/B
    export_constant_folding = True

    def __init__(self, n_in=16, hidden=32, n_out=10):
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, n_out)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out.mean(dim=1))
