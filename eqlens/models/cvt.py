"""CvT baseline: the 2-stage convolutional vision transformer the EqCvT work compared against.

``[B, 1, H, W]`` -> stage 1 (7x7 stride-4 embedding, 64 channels, 2 heads, 2 blocks, MLP x4)
-> stage 2 (3x3 stride-2 embedding, 128 channels, 3 heads, 1 block, MLP x4) -> global average
pool -> Linear(128, 128) -> BatchNorm1d -> ELU -> Linear(128, classes). 463,106 parameters for
2 classes. At 129x129 the token grids are 33x33 (keys 17x17) and 17x17 (keys 9x9).

A plain model: no built-in symmetry, so its logits change under rotation.
"""

from __future__ import annotations

from torch import nn

from .cost import ModelCost, count
from .cvt_layers import ClassifierHead, CvTStage, StageConfig, head_cost, stage_cost
from .inspection import LensModel
from .registry import register

CVT_STAGES = (
    StageConfig(dim=64, embed_kernel=7, embed_stride=4, heads=2, depth=2, mlp_ratio=4),
    StageConfig(dim=128, embed_kernel=3, embed_stride=2, heads=3, depth=1, mlp_ratio=4),
)


class CvT(LensModel):
    """``[B, in_channels, H, W] -> [B, classes]`` through CvT stages, each ending in a ``Tap("map")``."""

    def __init__(self, num_classes: int, stages: tuple[StageConfig, ...] = CVT_STAGES, head_hidden: int = 128,
                 in_channels: int = 1):
        super().__init__()
        dims = [in_channels] + [s.dim for s in stages]
        self.stages = nn.Sequential(*(CvTStage(dims[i], s) for i, s in enumerate(stages)))
        self.head = ClassifierHead(dims[-1], head_hidden, num_classes)

    def forward(self, x):
        return self.head(self.stages(x))


def cvt_cost(num_classes: int, group, image_size: int, head_hidden: int = 128) -> ModelCost:
    """The two stages and the classifier head."""
    total, side, c_in = ModelCost(0, 0), image_size, 1
    for stage in CVT_STAGES:
        cost, side = stage_cost(c_in, stage, side)
        total, c_in = total + cost, stage.dim
    return total + head_cost(c_in, count("head_hidden", head_hidden), num_classes)


@register("cvt", cost=cvt_cost, description="CvT baseline (2 stages, 463k parameters), no built-in symmetry",
          uses_group=False, invariant=False)
def build_cvt(num_classes: int, group, image_size: int, head_hidden: int = 128) -> CvT:
    return CvT(num_classes, CVT_STAGES, head_hidden)
