"""Group convolutions from scratch in plain torch, for the cyclic groups C_N and the dihedral groups D_N.

Feature fields and how the group acts on them
---------------------------------------------
An image ``x`` is ``[B, C, H, W]``; ``g`` moves it in the plane: ``(g.x)(p) = x(g^-1 p)``
(:func:`eqlens.groups.act_on_image`: mirror first, then a counter-clockwise rotation).

A *regular feature field* is ``F: [B, C, |G|, H, W]``: for every field ``c`` and every group
element ``h`` (axis 2, numbered ``flip * N + rot``) a map over the plane. ``g`` acts on it by
moving every map AND permuting the group axis (the left-regular representation)::

    (rho(g) F)[h](p) = F[g^-1 h](g^-1 p)        # for C_N: a rotation by r*360/N deg rolls axis 2 by +r

(:func:`eqlens.groups.act_on_group_channels`). A layer ``L`` is *equivariant* when
``L(g.x) = rho(g) L(x)``; after the last layer, pooling over the group axis and over the plane
gives numbers that do not change at all: invariance.

The three layers
----------------
- :class:`LiftingConv`: image ``[B, C, H, W]`` -> field ``[B, C', |G|, H, W]``. One free kernel
  ``psi: [C', C, k, k]``; output ``g`` correlates the image with the moved kernel ``g.psi``::

      L(x)[c', g] = sum_c  x[c] * (g.psi)[c', c]          (* = cross-correlation, as conv2d)

  Because ``(g.x) * (g.psi) = g.(x * psi)``, ``L(g.x)[h] = g.(x * (g^-1 h).psi) = (rho(g) L(x))[h]``.
- :class:`GroupConv`: field ``[B, C, |G|, H, W]`` -> field ``[B, C', |G|, H, W]``. Free kernel
  ``psi: [C', C, |G|, k, k]`` (a map per input orientation); output ``g`` uses the kernel moved
  by ``rho(g)``, i.e. every map turned by ``g`` and the input-orientation axis permuted::

      L(F)[c', g] = sum_{c, h}  F[c, h] * (rho(g) psi)[c', c, h],   (rho(g) psi)[h] = g.psi[g^-1 h]

- :class:`GroupPool`: max or mean over the group axis, ``[B, C, |G|, H, W] -> [B, C, H, W]``:
  ``rho(g)`` only permutes that axis, so the pooled maps are plain images that move with ``g``.

One conv2d per layer: the |G| moved kernels are stacked as extra output channels,
``[C', |G|, C (, |G|), k, k] -> [C' * |G|, C (* |G|), k, k]``, so output channel ``c' * |G| + g``
is orientation ``g`` of field ``c'`` (escnn's layout) and the ``[B, C' * |G|, H, W]`` result views
as ``[B, C', |G|, H, W]`` for free.

How a kernel is moved (exact where it can be)
----------------------------------------------
``g = r^rot m^flip`` with angle ``rot * 360/N = q * 90 + residual``, ``0 <= residual < 90``:

1. flip: ``torch.flip(psi, dims=[-1])`` -- exact;
2. residual angle (only for N not dividing 4, e.g. C8's 45 deg): the kernel's sampling grid is
   rotated and the kernel resampled with ``grid_sample`` (bilinear) -- approximate; to keep the
   rotated copies inside the k x k square such groups mask every kernel to its inscribed disk.
   Resampling is linear, so layers precompute it once as a ``[k*k, k*k]`` matrix per element
   (:func:`resampling_matrix`) and apply it with one matrix product;
3. ``q`` quarter turns: ``torch.rot90(psi, q, dims=(-2, -1))`` -- exact.

Steps 1 and 3 are pixel permutations, so for every element that maps the pixel grid onto itself
(multiples of 90 deg, with or without the flip) ``(g.x) * (g.psi)`` and ``g.(x * psi)`` are the
same sums in the same order: the layers are equivariant to float rounding, for C4 and D4 on all
their elements and for C8/D8 on their 90-deg subgroups. Putting the quarter turns last (instead
of resampling the full angle) is what makes C8 exact on that subgroup: the kernel of ``r^(k+2)``
is exactly ``rot90`` of the kernel of ``r^k``. Rotations by 45 deg stay approximate (the image
itself cannot be rotated by 45 deg without interpolation either).

Spatial layers keep exactness only when their sampling is symmetric about the image centre:
stride-1 convolutions with ``padding = k // 2`` always are; see :class:`CentredMaxPool2d` for
downsampling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import Group, GroupElement, circular_mask, rotate


def move_kernel(kernel: torch.Tensor, g: GroupElement, mask: torch.Tensor | None = None,
                resampling: torch.Tensor | None = None) -> torch.Tensor:
    """``g.psi`` for kernels ``[..., k, k]``: flip (exact), residual rotation (resampled), quarter turns (exact).

    ``mask`` (``[k, k]``), if given, is applied before moving (the kernel's support is then a disk,
    which rotations by any angle keep inside the square). The residual rotation resamples the
    kernel on a rotated grid (``grid_sample``, bilinear); ``resampling``, if given, is that same
    linear map precomputed by :func:`resampling_matrix` (``[k*k, k*k]``), which layers use because
    one matrix product is much cheaper than ``grid_sample`` on thousands of tiny kernels. See the
    module docstring for why the quarter turns come last."""
    if mask is not None:
        kernel = kernel * mask
    if g.flip:
        kernel = torch.flip(kernel, dims=[-1])
    quarter_turns, residual_deg = divmod(g.angle_deg, 90.0)
    if residual_deg > 1e-9:
        if resampling is not None:
            kernel = (kernel.flatten(-2) @ resampling).reshape(kernel.shape)
        else:
            flat = kernel.reshape(-1, 1, *kernel.shape[-2:])
            kernel = rotate(flat, residual_deg, exact_when_possible=False, mode="bilinear").reshape(kernel.shape)
    return torch.rot90(kernel, int(quarter_turns) % 4, dims=(-2, -1))


def resampling_matrix(kernel_size: int, angle_deg: float, dtype=torch.float32) -> torch.Tensor:
    """The bilinear rotation of ``k x k`` kernels by ``angle_deg`` as a matrix ``M: [k*k, k*k]``:
    ``rotated.flatten(-2) = kernel.flatten(-2) @ M``. Row ``j`` is pixel ``j``'s one-hot kernel,
    rotated by ``grid_sample`` (the map is linear, so the basis images define it)."""
    n = kernel_size * kernel_size
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, kernel_size, kernel_size)
    return rotate(basis, angle_deg, exact_when_possible=False, mode="bilinear").reshape(n, n).to(dtype)


def kernel_mask(group: Group, kernel_size: int, device=None, dtype=torch.float32) -> torch.Tensor | None:
    """``[k, k]`` disk mask for groups with rotations finer than 90 deg, ``None`` when every element is exact."""
    if len(group.exact_elements) == group.order:
        return None
    return circular_mask(kernel_size, kernel_size, device=device, dtype=dtype)


class _MovedKernelConv(nn.Module):
    """Shared machinery of :class:`LiftingConv` and :class:`GroupConv`: one free kernel, its |G|
    moved copies stacked as output channels, one ``conv2d``.

    Subclasses say how a kernel is moved (``_moved``) and what input they take (``_flatten_input``).
    In eval mode under ``torch.no_grad()`` the stacked weight is cached (rebuilt when the kernel
    changes in place, e.g. ``load_state_dict``); with gradients on it is always rebuilt so that
    weight gradients flow."""

    def __init__(self, group: Group, kernel_shape: tuple[int, ...], out_channels: int, kernel_size: int,
                 padding: int | None, bias: bool, stride: int = 1):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (a centre pixel to rotate about), got {kernel_size}")
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.group = group
        self.stride = stride
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.empty(*kernel_shape))
        # One bias per field, shared by its |G| orientations: a bias that differed along the group
        # axis would not survive the permutation rho(g).
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("mask", kernel_mask(group, kernel_size), persistent=False)
        # Row g: the residual rotation of element g as a matrix (see move_kernel); None for groups
        # whose elements are all exact.
        resampling = None
        if self.mask is not None:
            resampling = torch.stack([resampling_matrix(kernel_size, g.angle_deg % 90.0) for g in group.elements])
        self.register_buffer("resampling", resampling, persistent=False)  # [|G|, k*k, k*k]
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def _moved(self, g: GroupElement) -> torch.Tensor:
        """The free kernel moved by ``g``: ``[*kernel_shape]``."""
        raise NotImplementedError

    def _move(self, kernel: torch.Tensor, g: GroupElement) -> torch.Tensor:
        resampling = None if self.resampling is None else self.resampling[g.index]
        return move_kernel(kernel, g, self.mask, resampling)

    def _flatten_input(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transformed_kernels(self) -> torch.Tensor:
        """The |G| moved copies of the kernel, ``[|G|, *kernel_shape]``, in group-axis order
        (copy 0 is the kernel itself, masked for groups finer than 90 deg)."""
        return torch.stack([self._moved(g) for g in self.group.elements])

    def stacked_weight(self) -> torch.Tensor:
        """The ``conv2d`` weight ``[C' * |G|, C_in_flat, k, k]``: output channel ``c' * |G| + g``
        holds the kernel moved by ``g``."""
        if self.training or torch.is_grad_enabled():
            self._cache = None
            return self._stack()
        key = (self.weight._version, self.weight.data_ptr(), self.weight.device, self.weight.dtype)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._stack())
        return self._cache[1]

    def _stack(self) -> torch.Tensor:
        moved = self.transformed_kernels()  # [|G|, C', C (, |G|), k, k]
        k = self.kernel_size
        return moved.transpose(0, 1).reshape(self.out_channels * self.group.order, -1, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = self._flatten_input(x)  # [B, C_in_flat, H, W]
        bias = None if self.bias is None else self.bias.repeat_interleave(self.group.order)
        if self.stride == 2 and (flat.shape[-1] % 2 == 0 or flat.shape[-2] % 2 == 0):
            raise ValueError(f"a stride-2 group convolution is centred only on odd sizes, got "
                             f"{tuple(flat.shape[-2:])}")
        out = F.conv2d(flat, self.stacked_weight(), bias, padding=self.padding, stride=self.stride)
        return out.unflatten(1, (self.out_channels, self.group.order))  # [B, C', |G|, H, W]

    def extra_repr(self) -> str:
        return (f"group={self.group.name}, kernel={tuple(self.weight.shape)}, padding={self.padding}, "
                f"stride={self.stride}, "
                f"bias={self.bias is not None}")


class LiftingConv(_MovedKernelConv):
    """Lifting convolution: image ``[B, C, H, W]`` -> regular field ``[B, C', |G|, H, W]``.

    ``out[:, c', g] = sum_c x[:, c] * (g.psi)[c', c]`` with the free kernel ``psi: [C', C, k, k]``
    (``self.weight``). Rotating/flipping the input by an exact ``g`` moves every output map by
    ``g`` and permutes the group axis by ``rho(g)`` (for C_N, a rotation by r*90 deg rolls it by
    ``r * N / 4``).

    ``stride=2`` samples the output on input rows and columns ``0, 2, ..., H-1``, giving
    ``[B, C', |G|, (H+1)/2, (W+1)/2]``. That grid is symmetric about the centre only for odd ``H``
    and ``W`` (the only sizes it accepts), so the layer stays exactly equivariant; it lets a network
    read the native pixels with its first kernel and still work on a half-size plane after it."""

    def __init__(self, group: Group, in_channels: int, out_channels: int, kernel_size: int = 5,
                 padding: int | None = None, bias: bool = True, stride: int = 1):
        super().__init__(group, (out_channels, in_channels, kernel_size, kernel_size), out_channels,
                         kernel_size, padding, bias, stride)
        self.in_channels = in_channels

    def _moved(self, g: GroupElement) -> torch.Tensor:
        return self._move(self.weight, g)  # [C', C, k, k]

    def _flatten_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"LiftingConv expects images [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        return x


class GroupConv(_MovedKernelConv):
    """Group convolution: regular field ``[B, C, |G|, H, W]`` -> regular field ``[B, C', |G|, H, W]``.

    ``out[:, c', g] = sum_{c, h} F[:, c, h] * (g.psi)[c', c, g^-1 h]`` with the free kernel
    ``psi: [C', C, |G|, k, k]`` (``self.weight``): output orientation ``g`` sees the kernel's maps
    turned by ``g`` and its input-orientation axis permuted by ``rho(g)`` -- the same action as on
    the features, so ``GroupConv(rho(g) F) = rho(g) GroupConv(F)`` for every exact ``g``."""

    def __init__(self, group: Group, in_channels: int, out_channels: int, kernel_size: int = 3,
                 padding: int | None = None, bias: bool = True):
        super().__init__(group, (out_channels, in_channels, group.order, kernel_size, kernel_size), out_channels,
                         kernel_size, padding, bias)
        self.in_channels = in_channels
        # Row g: the source index of every input orientation h, index(g^-1 h).
        perms = torch.tensor([group.regular_permutation(g) for g in group.elements])
        self.register_buffer("permutations", perms, persistent=False)  # [|G|, |G|]

    def _moved(self, g: GroupElement) -> torch.Tensor:
        permuted = self.weight.index_select(2, self.permutations[g.index])  # psi[g^-1 h]
        return self._move(permuted, g)  # [C', C, |G|, k, k]

    def _flatten_input(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.group.order)
        if x.dim() != 5 or tuple(x.shape[1:3]) != expected:
            raise ValueError(f"GroupConv expects fields [B, {expected[0]}, |G|={expected[1]}, H, W], "
                             f"got {tuple(x.shape)}")
        return x.flatten(1, 2)  # [B, C * |G|, H, W], orientation fastest


class GroupBatchNorm(nn.BatchNorm3d):
    """Batch norm of regular fields ``[B, C, |G|, H, W]``: one mean, variance, scale and shift per
    field ``c``, pooled over batch, group axis and plane.

    Sharing the statistics over the group axis is what keeps it equivariant: ``rho(g)`` permutes
    that axis and moves the plane, which leaves per-field statistics unchanged (a per-orientation
    norm, i.e. ``BatchNorm2d`` on ``[B, C * |G|, H, W]``, would not be). That is exactly what
    ``BatchNorm3d`` computes with the group axis as its depth axis."""

    def __init__(self, num_fields: int, group_size: int, **kwargs):
        super().__init__(num_fields, **kwargs)
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.group_size:
            raise ValueError(f"GroupBatchNorm expects [B, C, |G|={self.group_size}, H, W], got {tuple(x.shape)}")
        return super().forward(x)


class GroupPool(nn.Module):
    """Pool over the group axis: ``[B, C, |G|, H, W] -> [B, C, H, W]`` (``"max"`` or ``"mean"``).

    ``rho(g)`` only permutes the pooled axis, so the result moves like an image:
    ``GroupPool(rho(g) F) = g . GroupPool(F)``; a global spatial pool after it is invariant."""

    def __init__(self, reduction: str = "max"):
        super().__init__()
        if reduction not in ("max", "mean"):
            raise ValueError(f"group pooling is 'max' or 'mean', got {reduction!r}")
        self.reduction = reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=2) if self.reduction == "max" else x.mean(dim=2)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CentredMaxPool2d(nn.Module):
    """Halve the plane with max-pool windows placed symmetrically about the centre: ``[..., H, W]``
    -> ``[..., ceil(H/2), ceil(W/2)]``; regular fields ``[B, C, |G|, H, W]`` keep their group axis.

    Why it commutes with rot90 and flips exactly: those maps send row ``i`` to ``H - 1 - i`` (or
    swap rows and columns), so the set of pooling windows must map onto itself.

    - even size: 2x2 windows at stride 2, rows ``{2j, 2j+1}``; ``i -> H-1-i`` sends window ``j`` to
      window ``H/2 - 1 - j``. Symmetric.
    - odd size: 2x2 windows would be wrong (floor mode drops the last row, which a rotation turns
      into the first). Instead 3x3 windows at stride 2 with padding 1, centred on rows
      ``0, 2, ..., H-1``: that set is symmetric exactly when ``H`` is odd.

    Each axis picks its rule from its own parity, so every size stays exact (the output parity
    then sets the next layer's rule).

    Gradients: ``max_pool2d`` sends a window's gradient to its first maximum in memory order, so
    where a window holds ties (flat patches) the gradient does not turn with the input although
    the values do. :func:`centred_max_pool2d` with ``share_ties=True`` gives the same values and
    shares a tie's gradient equally (``amax``'s rule): attributions use it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return centred_max_pool2d(x)


def centred_max_pool2d(x: torch.Tensor, share_ties: bool = False) -> torch.Tensor:
    """:class:`CentredMaxPool2d` as a function; ``share_ties``: the gradient of tied maxima is shared
    equally among them (slower; the values are the same)."""
    lead = x.shape[:-2]
    # Channels stay channels ([B, C * |G|, H, W]): max_pool2d is several times faster on a few
    # wide images than on many one-channel ones, and the windows are the same.
    flat = x.reshape(x.shape[0], -1, *x.shape[-2:]) if x.dim() != 4 else x
    sizes = [3 if n % 2 else 2 for n in x.shape[-2:]]
    pads = [1 if n % 2 else 0 for n in x.shape[-2:]]
    if share_ties:
        padded = F.pad(flat, (pads[1], pads[1], pads[0], pads[0]), value=float("-inf"))
        out = padded.unfold(2, sizes[0], 2).unfold(3, sizes[1], 2).amax(dim=(-2, -1))
    else:
        out = F.max_pool2d(flat, kernel_size=sizes, stride=2, padding=pads)
    return out.reshape(*lead, *out.shape[-2:])
