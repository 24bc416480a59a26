"""CIFAR-sized networks of the knowledge-distillation zoo (RepDistiller's ``models/``), the teacher pools of
G-VBSM and EDC on CIFAR and Tiny-ImageNet: WRN-16-2, MobileNetV2 at half width and ShuffleNetV2 x0.5.

Architectures from shaoshitong/G_VBSM_Dataset_Condensation@1ed80b0 ``Branch_CIFAR_10/recover/models/``
(``wrn.py``, ``mobilenetv2.py`` ``mobile_half``, ``ShuffleNetv2.py`` ``ShuffleV2_0_5``; EDC ships the same
files); the mixing branches of their ``forward`` (training-time augmentation) are left out, the layers and their
order are theirs.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class WideBlock(nn.Module):
    """Pre-activation basic block (``wrn.py`` ``BasicBlock``): BN-ReLU-conv3x3-BN-ReLU-conv3x3, with a 1x1
    convolution on the activated input where the width or stride changes."""

    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(inputs), nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(outputs), nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.shortcut = None if inputs == outputs else nn.Conv2d(inputs, outputs, 1, stride, 0, bias=False)

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    """WRN-depth-k (``wrn.py`` ``WideResNet``): conv3x3 16, three groups of (depth - 4) / 6 blocks of widths
    16k, 32k, 64k (strides 1, 2, 2), BN-ReLU, global average pooling, linear."""

    def __init__(self, depth: int, widen: int, num_classes: int):
        super().__init__()
        blocks, widths = (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.groups = nn.Sequential(*(
            nn.Sequential(*(WideBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1], stride if i == 0 else 1)
                            for i in range(blocks)))
            for g, stride in enumerate((1, 2, 2))))
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():  # wrn.py's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        out = F.relu(self.bn(self.groups(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _conv_bn_relu(inputs: int, outputs: int, kernel: int, stride: int = 1, groups: int = 1) -> list:
    return [nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(outputs), nn.ReLU(inplace=True)]


class InvertedResidual(nn.Module):
    """``mobilenetv2.py`` ``InvertedResidual``: 1x1 expand, 3x3 depthwise, 1x1 project (no ReLU after it);
    a residual where the stride is 1 and the width unchanged."""

    def __init__(self, inputs: int, outputs: int, stride: int, expand: int):
        super().__init__()
        hidden = inputs * expand
        self.residual = stride == 1 and inputs == outputs
        self.conv = nn.Sequential(*_conv_bn_relu(inputs, hidden, 1), *_conv_bn_relu(hidden, hidden, 3, stride, hidden),
                                  nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """The CIFAR MobileNetV2 of ``mobilenetv2.py`` (``mobile_half``: expansion 6, width 0.5): a stride-2 stem,
    the seven inverted-residual stages (strides 1, 1, 2, 2, 1, 2, 1), a 1x1 conv to 1280, average pooling,
    linear."""

    STAGES = ((1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
              (None, 160, 3, 2), (None, 320, 1, 1))  # (expansion, width, blocks, first stride); None: T

    def __init__(self, num_classes: int, expand: int = 6, width: float = 0.5):
        super().__init__()
        channels = int(32 * width)
        layers = _conv_bn_relu(3, channels, 3, 2)
        for t, c, n, s in self.STAGES:
            for i in range(n):
                layers.append(InvertedResidual(channels, int(c * width), s if i == 0 else 1, t or expand))
                channels = int(c * width)
        last = int(1280 * width) if width > 1.0 else 1280
        self.features = nn.Sequential(*layers, *_conv_bn_relu(channels, last, 1))
        self.classifier = nn.Linear(last, num_classes)
        for m in self.modules():  # mobilenetv2.py _initialize_weights
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        out = self.features(x)
        return self.classifier(F.avg_pool2d(out, out.shape[-1], ceil_mode=True).flatten(1))


def channel_shuffle(x, groups: int = 2):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """``ShuffleNetv2.py`` ``BasicBlock``: half the channels pass, the other half go through 1x1-BN-ReLU,
    depthwise 3x3-BN, 1x1-BN-ReLU; concatenated, then shuffled."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(*_conv_bn_relu(half, half, 1), nn.Conv2d(half, half, 3, 1, 1, groups=half,
                                                                               bias=False),
                                    nn.BatchNorm2d(half), *_conv_bn_relu(half, half, 1))

    def forward(self, x):
        kept, changed = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([kept, self.branch(changed)], 1))


class ShuffleDown(nn.Module):
    """``ShuffleNetv2.py`` ``DownBlock``: two stride-2 branches (depthwise 3x3-BN, 1x1-BN-ReLU; and 1x1-BN-ReLU,
    depthwise 3x3-BN, 1x1-BN-ReLU), each to half the output channels, concatenated, then shuffled."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        half = outputs // 2
        self.left = nn.Sequential(nn.Conv2d(inputs, inputs, 3, 2, 1, groups=inputs, bias=False),
                                  nn.BatchNorm2d(inputs), *_conv_bn_relu(inputs, half, 1))
        self.right = nn.Sequential(*_conv_bn_relu(inputs, half, 1),
                                   nn.Conv2d(half, half, 3, 2, 1, groups=half, bias=False), nn.BatchNorm2d(half),
                                   *_conv_bn_relu(half, half, 1))

    def forward(self, x):
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], 1))


class ShuffleNetV2(nn.Module):
    """The CIFAR ShuffleNetV2 of ``ShuffleNetv2.py`` (net size 0.5: widths 48, 96, 192, 1024; 3, 7, 3 units
    after each down block): a 1x1 stem of 24 channels, no max-pool, a 1x1 conv to 1024, global average
    pooling, linear."""

    def __init__(self, num_classes: int, widths=(48, 96, 192, 1024), units=(3, 7, 3)):
        super().__init__()
        layers, channels = _conv_bn_relu(3, 24, 1), 24
        for width, count in zip(widths, units):
            layers += [ShuffleDown(channels, width), *(ShuffleUnit(width) for _ in range(count))]
            channels = width
        self.features = nn.Sequential(*layers, *_conv_bn_relu(channels, widths[3], 1))
        self.linear = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        return self.linear(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))
