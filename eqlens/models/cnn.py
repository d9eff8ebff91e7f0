"""Plain CNN baseline: no built-in symmetry, so its logits change under rotation.

``[B, 1, H, W]`` -> four (conv 3x3 - BatchNorm - ReLU - max-pool 2) blocks -> global average
pool -> linear. About 80k parameters with the default widths; takes any H, W >= 16.
"""

from __future__ import annotations

from torch import nn

from .cost import ModelCost, counts
from .inspection import LensModel, Tap
from .registry import register


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class PlainCNN(LensModel):
    def __init__(self, num_classes: int, widths=(16, 32, 64, 96)):
        super().__init__()
        layers, c_in = [], 1
        for c_out in widths:
            layers += [conv_block(c_in, c_out), Tap("map")]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.features = Tap("features")
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x):
        z = self.pool(self.body(x)).flatten(1)  # [B, widths[-1]]
        return self.head(self.features(z))


def cnn_cost(num_classes: int, group, image_size: int, widths=(16, 32, 64, 96)) -> ModelCost:
    """Per block: a 3x3 conv without bias and a BatchNorm (conv, norm and pooled maps); then the linear head."""
    widths, c_in, side = counts("widths", widths), 1, image_size
    parameters, floats = 0, 0
    for c_out in widths:
        parameters += c_in * c_out * 9 + 2 * c_out
        floats += 2 * c_out * side**2 + c_out * (side // 2) ** 2
        c_in, side = c_out, side // 2
    return ModelCost(parameters + c_in * num_classes + num_classes, floats + c_in + num_classes)


@register("cnn", cost=cnn_cost, description="plain CNN baseline (4 conv blocks, ~80k parameters)",
          uses_group=False, invariant=False)
def build_cnn(num_classes: int, group, image_size: int, widths=(16, 32, 64, 96)) -> PlainCNN:
    return PlainCNN(num_classes, tuple(widths))
