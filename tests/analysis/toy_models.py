"""Small hand-built models whose symmetry is known by construction, to test the measures against.

- :class:`LiftingModel`: one lifting convolution ``[B, 1, H, W] -> [B, C, |G|, H, W]`` whose
  |G| kernels are ``g . W`` (so a turn ``h`` of the input permutes the group axis by ``rho(h)``
  and turns each map), then max over the group and mean over the plane: exactly invariant under
  the group's exact elements. With ``equivariant=False`` the |G| kernels are free (a random conv).
- :class:`SymmetricConvModel`: one conv whose kernel is averaged over D4, so its map turns with
  the input (plain rotation); ``symmetric=False`` keeps the random kernel.
- :class:`OrbitAveraged`: any model averaged over the exact elements of a group (plain module).
- :class:`ConstantModel`: the same logits for every image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eqlens.groups import act_on_image, get_group
from eqlens.models import LensModel, Tap


class LiftingModel(LensModel):
    """``[B, 1, H, W]`` -> group tap ``[B, C * |G|, H, W]`` -> invariant features ``[B, C]`` -> logits."""

    def __init__(self, group="C4", channels: int = 3, kernel_size: int = 5, num_classes: int = 3,
                 equivariant: bool = True):
        super().__init__()
        self.group = get_group(group)
        self.invariant = equivariant
        self.equivariant = equivariant
        order = self.group.order
        self.weight = nn.Parameter(torch.randn(channels, 1, kernel_size, kernel_size)
                                   if equivariant else torch.randn(channels * order, 1, kernel_size, kernel_size))
        self.lifted = Tap("group", group_size=order)
        self.features = Tap("features")
        self.head = nn.Linear(channels, num_classes)

    def kernels(self) -> torch.Tensor:
        """``[C * |G|, 1, k, k]``: for field ``c`` the |G| kernels ``g . W_c`` in group-axis order."""
        if not self.equivariant:
            return self.weight
        turned = torch.stack([act_on_image(self.weight, g) for g in self.group.elements], dim=1)
        return turned.reshape(-1, *self.weight.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[-1]
        lifted = self.lifted(F.conv2d(x, self.kernels(), padding=k // 2))  # [B, C * |G|, H, W]
        b, _, h, w = lifted.shape
        fields = lifted.reshape(b, -1, self.group.order, h, w).relu()
        return self.head(self.features(fields.amax(dim=2).mean(dim=(-2, -1))))


class SymmetricConvModel(LensModel):
    """``[B, 1, H, W]`` -> conv -> map tap ``[B, C, H, W]`` -> mean -> logits."""

    def __init__(self, channels: int = 3, kernel_size: int = 5, num_classes: int = 3, symmetric: bool = True):
        super().__init__()
        self.symmetric = symmetric
        self.weight = nn.Parameter(torch.randn(channels, 1, kernel_size, kernel_size))
        self.map = Tap("map")
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if self.symmetric:
            d4 = get_group("D4")
            weight = torch.stack([act_on_image(weight, g) for g in d4.elements]).mean(dim=0)
        z = self.map(F.conv2d(x, weight, padding=weight.shape[-1] // 2))
        return self.head(z.mean(dim=(-2, -1)))


class OrbitAveraged(nn.Module):
    """``f_G(x) = mean_g f(g x)`` over the exact elements of ``group``: exactly invariant for them."""

    def __init__(self, inner: nn.Module, group="C4"):
        super().__init__()
        self.inner = inner
        self.orbit_group = get_group(group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.inner(act_on_image(x, g)) for g in self.orbit_group.exact_elements]).mean(dim=0)


class ConstantModel(nn.Module):
    """Logits ``[B, classes]`` equal to a fixed vector whatever the image."""

    def __init__(self, logits=(1.0, -2.0, 0.5)):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)
