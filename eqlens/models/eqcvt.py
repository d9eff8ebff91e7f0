"""EqCvT, escnn steerable block + one CvT stage: as published (``eqcvt``) and exactly invariant (``eqcvt_inv``).

Both models, on ``x: [B, 1, H, W]``:

    SteerableLift (R2Conv 7x7 -> 10 regular fields, InnerBatchNorm, ReLU, Gaussian blur)
      -> Tap("group")   [B, 10 * |G|, H - 8, W - 8], group axis in eqlens order
      -> GroupMaxPool   [B, 10, H - 8, W - 8], invariant channels
      -> CvTStage       3x3 stride-2 embedding to 32 channels, 2 blocks, 3 heads of 64, MLP x2,
                        q/k/v by depthwise-separable convs, keys and values at stride 2; Tap("map")
      -> ClassifierHead global average pool, Linear(32, 64), BatchNorm1d, ELU, Tap("features"), Linear(64, classes)

``eqcvt`` is the seed model as it ran (64,810 parameters for 2 classes with C4): only the
steerable block is equivariant; the ordinary CvT kernels after group pooling break the symmetry,
so its logits change under a 90-deg rotation of the input.

``eqcvt_inv`` makes every spatial kernel of the CvT stage invariant under the group's exact
elements (:class:`~eqlens.models.cvt_layers.OrbitSharedConv2d`: weights shared over kernel-tap
orbits, odd kernels, centred stride-2 grids) and is exactly invariant, ``f(g . x) = f(x)`` up to
float noise, for every exact ``g`` (90-deg multiples for C_N, and flips for D_N; C8 and D8 are
exact on their 90-deg subgroup) **on inputs with odd H and W** (on even sizes a stride-2 grid
cannot be centred). Proof sketch: the lift is equivariant, group max-pooling makes the channels
invariant and leaves the maps moving by ``g``; each CvT layer is a symmetric-kernel conv on a
centred grid, a token-wise map, or attention without positional encoding, all of which commute
with ``g``; the final average pool forgets where tokens are. The only positional information is
the zero padding of the convs, which is symmetric. 62,122 parameters (2 classes, any group).

``exported()`` returns an inference copy whose steerable block is plain torch (see
:mod:`eqlens.models.steerable` for that and for how the state dict stays mode-independent).
"""

from __future__ import annotations

import copy

from ..groups import Group
from .cost import ModelCost, count
from .cvt_layers import ClassifierHead, CvTStage, StageConfig, head_cost, stage_cost
from .inspection import LensModel, Tap
from .registry import register
from .steerable import GroupMaxPool, SteerableLift

EQCVT_STAGE = StageConfig(dim=32, embed_kernel=3, embed_stride=2, heads=3, depth=2, mlp_ratio=2)


class EqCvT(LensModel):
    """``[B, 1, H, W] -> [B, classes]``; see the module docstring. ``symmetric=True`` gives ``eqcvt_inv``."""

    def __init__(self, num_classes: int, group: Group, *, fields: int = 10, stage: StageConfig = EQCVT_STAGE,
                 head_hidden: int = 64, symmetric: bool = False):
        super().__init__()
        self.group = group
        self.invariant = symmetric
        self.lift = SteerableLift(group, fields)
        self.group_tap = Tap("group", group_size=group.order)
        self.group_pool = GroupMaxPool(group.order)
        self.stage = CvTStage(fields, stage, symmetry=group if symmetric else None)
        self.head = ClassifierHead(stage.dim, head_hidden, num_classes)

    def forward(self, x):
        return self.head(self.stage(self.group_pool(self.group_tap(self.lift(x)))))

    def exported(self) -> EqCvT:
        """A copy for inference, in eval mode, with the escnn block replaced by plain torch modules
        (same logits as this model in eval mode, to float noise). Its state dict has other keys:
        checkpoint the original model, not the export."""
        clone = copy.deepcopy(self)
        clone.lift = self.lift.exported()
        return clone.eval()


# Free weights of the lifting R2Conv (7x7, trivial -> one regular field) in escnn's default basis: 18 for
# C4, C8, D4 and D8 alike; the registry tests check it against the built block for every group.
LIFT_BASIS_PER_FIELD = 18


def _cost(num_classes: int, group: Group, image_size: int, symmetric: bool, fields, head_hidden) -> ModelCost:
    """SteerableLift (7x7 conv, padding 1, InnerBatchNorm, 5x5 blur: ``S -> S - 4 -> S - 8``), group
    max-pool, the CvT stage and the head."""
    fields, hidden = count("fields", fields), count("head_hidden", head_hidden)
    channels, conv_side, side = fields * group.order, image_size - 4, image_size - 8
    lift = ModelCost(fields * (LIFT_BASIS_PER_FIELD + 2),
                     channels * 49 + 3 * channels * conv_side**2 + channels * side**2 + fields * side**2)
    stage, _ = stage_cost(fields, EQCVT_STAGE, side, group if symmetric else None)
    return lift + stage + head_cost(EQCVT_STAGE.dim, hidden, num_classes)


def eqcvt_cost(num_classes: int, group: Group, image_size: int, fields: int = 10, head_hidden: int = 64) -> ModelCost:
    return _cost(num_classes, group, image_size, False, fields, head_hidden)


def eqcvt_inv_cost(num_classes: int, group: Group, image_size: int, fields: int = 10,
                   head_hidden: int = 64) -> ModelCost:
    return _cost(num_classes, group, image_size, True, fields, head_hidden)


def _build(num_classes: int, group: Group, symmetric: bool, fields: int, head_hidden: int) -> EqCvT:
    return EqCvT(num_classes, group, fields=fields, head_hidden=head_hidden, symmetric=symmetric)


@register("eqcvt", cost=eqcvt_cost, description="EqCvT as published: escnn block + one CvT stage (64.8k parameters), "
          "equivariant first block only", uses_group=True, invariant=False, min_image_size=17)
def build_eqcvt(num_classes: int, group: Group, image_size: int, fields: int = 10, head_hidden: int = 64) -> EqCvT:
    return _build(num_classes, group, False, fields, head_hidden)


@register("eqcvt_inv", cost=eqcvt_inv_cost,
          description="EqCvT with symmetric CvT kernels, exactly invariant on odd sizes (62.1k parameters)",
          uses_group=True, invariant=True, odd_size_for_exactness=True, min_image_size=17)
def build_eqcvt_inv(num_classes: int, group: Group, image_size: int, fields: int = 10,
                    head_hidden: int = 64) -> EqCvT:
    return _build(num_classes, group, True, fields, head_hidden)
