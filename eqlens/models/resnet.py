"""ResNet-18 baseline (He et al. 2016), written out here so eqlens needs no torchvision.

``[B, 1, H, W]`` -> 7x7 stride-2 stem, 3x3 stride-2 max-pool -> four stages of two basic
blocks (widths 64, 128, 256, 512; stages 2-4 halve the grid) -> global average pool
``[B, 512]`` -> linear ``[B, classes]``. About 11.2M parameters with the default widths, the
DeepLense Model I baseline (94.5% in the published table). No built-in symmetry: its filters are
unconstrained, so its logits change under rotation, exact 90 deg turns included.

Taps: ``stage1`` .. ``stage4`` (``kind="map"``, ``[B, widths[i-1], ~H/2^(i+1), ~W/2^(i+1)]``) and
``features`` (``[B, widths[-1]]``, before ``fc``).
"""

from __future__ import annotations

import torch
from torch import nn

from .cost import ModelCost, conv_out, counts
from .inspection import LensModel, Tap
from .registry import register


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (a 1x1 strided projection when the
    width or the grid changes): ``[B, c_in, H, W] -> [B, c_out, ceil(H / stride), ceil(W / stride)]``."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(LensModel):
    """ResNet with basic blocks; ``blocks=(2, 2, 2, 2)`` is ResNet-18."""

    def __init__(self, num_classes: int, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), in_channels: int = 1):
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"need one width per stage, got widths={widths} and blocks={blocks}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        # torchvision's module names (layer1..layer4) with a map tap after each (stage1..stage4).
        self.num_stages, c_in = len(widths), widths[0]
        for i, (width, depth) in enumerate(zip(widths, blocks, strict=True), start=1):
            stride = 1 if i == 1 else 2
            blocks_i = [BasicBlock(c_in if j == 0 else width, width, stride if j == 0 else 1) for j in range(depth)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks_i))
            self.add_module(f"stage{i}", Tap("map"))
            c_in = width
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.features = Tap("features")
        self.fc = nn.Linear(c_in, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's recipe: He init for convs, BN as identity; the zero-init of the last BN
        # in each block is left out so an untrained model is not a near-identity stack.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.stem(x)
        for i in range(1, self.num_stages + 1):
            z = getattr(self, f"stage{i}")(getattr(self, f"layer{i}")(z))
        return self.fc(self.features(self.pool(z).flatten(1)))


def _basic_block_cost(c_in: int, c_out: int, stride: int, side: int) -> tuple[ModelCost, int]:
    """:class:`BasicBlock`'s cost on a ``side`` grid, and the side of its output."""
    out = conv_out(side, 3, stride, 1)
    projected = stride != 1 or c_in != c_out
    parameters = c_in * c_out * 9 + c_out * c_out * 9 + 4 * c_out + (c_in * c_out + 2 * c_out if projected else 0)
    maps = 5 + (2 if projected else 0)  # conv1, bn1, conv2, bn2, sum (+ shortcut conv, bn)
    return ModelCost(parameters, maps * c_out * out**2), out


def resnet_cost(num_classes: int, image_size: int, widths, blocks) -> ModelCost:
    """Stem (7x7 stride-2 conv, BN, 3x3 stride-2 max-pool), the stages of basic blocks, the linear head."""
    side = conv_out(image_size, 7, 2, 3)
    total = ModelCost(widths[0] * 49 + 2 * widths[0], 2 * widths[0] * side**2)
    side = conv_out(side, 3, 2, 1)
    total += ModelCost(0, widths[0] * side**2)
    c_in = widths[0]
    for i, (width, depth) in enumerate(zip(widths, blocks, strict=True)):
        for j in range(depth):
            block, side = _basic_block_cost(c_in, width, 2 if i > 0 and j == 0 else 1, side)
            total, c_in = total + block, width
    return total + ModelCost(c_in * num_classes + num_classes, c_in + num_classes)


def resnet18_cost(num_classes: int, group, image_size: int, widths=(64, 128, 256, 512)) -> ModelCost:
    widths = counts("widths", widths, max_len=4)
    if len(widths) != 4:
        raise ValueError(f"widths must hold one width for each of the 4 stages, got {len(widths)}")
    return resnet_cost(num_classes, image_size, widths, (2, 2, 2, 2))


@register("resnet18", cost=resnet18_cost, description="ResNet-18 baseline (no symmetry, ~11.2M parameters)",
          uses_group=False, invariant=False)
def build_resnet18(num_classes: int, group, image_size: int, widths=(64, 128, 256, 512)) -> ResNet:
    return ResNet(num_classes, widths=tuple(widths), blocks=(2, 2, 2, 2))
