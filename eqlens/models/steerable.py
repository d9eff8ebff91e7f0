"""The escnn lifting block of EqCvT, its plain-torch export, and group max-pooling.

:class:`SteerableLift` maps an image ``[B, 1, H, W]`` to ``fields`` regular feature fields of the
group, returned as a plain tensor ``[B, fields * |G|, H', W']`` with each field's |G| orientation
channels contiguous in eqlens' group-axis order (``index = flip * N + rot``):

    R2Conv k x k (trivial -> regular, no bias) -> InnerBatchNorm -> ReLU
    -> PointwiseAvgPoolAntialiased (Gaussian blur, stride 1)

Group action: for an exact element ``g`` (a 90-deg multiple, with or without the flip; for C8
and D8 those form the 90-deg subgroup), ``lift(g . x) = act_on_group_channels(lift(x), g)``:
every map moves by ``g`` and the group axis is permuted by the left-regular representation (a
rotation by ``r * 90`` deg rolls a C4 axis by ``r``), exactly up to float noise on inputs whose
output grid is centred (any size, since the block has stride 1). escnn's regular
representations list the group elements in the same order as eqlens (checked when a block is
built), and escnn's default reflection axis is eqlens' left-right flip (checked by the tests).

State dict: escnn's ``R2Conv`` caches its expanded kernel as buffers (``filter``,
``expanded_bias``) in eval mode and drops them in train mode, so its keys would depend on the
mode. :class:`SteerableLift` leaves these derived buffers out of ``state_dict()``, ignores them
when loading, and re-expands the kernel after loading in eval mode; a state dict saved in
either mode loads (strictly) into a block in either mode. The cached eval-mode kernel is kept
without its autograd graph, so an eval-mode model can be deep-copied (no weight gradients flow
through the block in eval mode; input gradients, as Captum needs, do). The other escnn buffers (the sampled kernel
basis, InnerBatchNorm's indices, the blur filter) exist in both modes and are saved as usual.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import nn

from ..groups import Group

_DERIVED_CONV_BUFFERS = ("filter", "expanded_bias")
# escnn warns at import when py3nj (a Fortran build) is missing; py3nj serves SO(3) only, which eqlens
# never uses, so the warning says nothing to our users (it used to land inside `eqlens models`' table).
warnings.filterwarnings("ignore", message=r".*py3nj.*", category=UserWarning)


@functools.cache
def gspace(group_name: str):
    """escnn's gspace for ``"C<N>"`` (``rot2dOnR2``) or ``"D<N>"`` (``flipRot2dOnR2``), built once per group."""
    from escnn import gspaces

    n = int(group_name[1:])
    return gspaces.flipRot2dOnR2(n) if group_name[0] == "D" else gspaces.rot2dOnR2(n)


def _check_regular_order(space, group: Group) -> None:
    """escnn's regular representation lists the group elements as (flip, rot) pairs in
    ``flip * N + rot`` order, like eqlens; fail loudly if a future escnn changes that."""
    listed = [element.to("int") for element in space.fibergroup.elements]
    expected = [(g.flip, g.rot) if group.dihedral else g.rot for g in group.elements]
    if listed != expected:
        raise RuntimeError(f"escnn lists the elements of {group.name} as {listed}; eqlens expects {expected}")


def _drop_derived_buffers(module, state_dict, prefix, local_metadata) -> None:
    for name in _DERIVED_CONV_BUFFERS:
        state_dict.pop(prefix + name, None)


def _ignore_derived_buffers(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                            error_msgs) -> None:
    # Whatever the checkpoint holds, load the module's own derived buffers back (so neither a
    # missing nor an unexpected key is reported); they are re-expanded after loading.
    for name in _DERIVED_CONV_BUFFERS:
        state_dict.pop(prefix + name, None)
        if isinstance(module._buffers.get(name), torch.Tensor):
            state_dict[prefix + name] = module._buffers[name]


def _detach_cached_kernel(conv) -> None:
    # escnn caches the kernel with its autograd graph, which a second backward pass cannot use
    # and copy.deepcopy refuses; eval mode is for inference, so keep the values only.
    for name in _DERIVED_CONV_BUFFERS:
        cached = conv._buffers.get(name)
        if isinstance(cached, torch.Tensor) and cached.grad_fn is not None:
            conv._buffers[name] = cached.detach()


def _refresh_cached_kernel(module, incompatible_keys) -> None:
    # In eval mode the R2Conv keeps the kernel expanded from the old weights: expand it again.
    if not module.training:
        module.train(True)
        module.train(False)
        _detach_cached_kernel(module)


def _gaussian_blur_as_conv(pool) -> nn.Conv2d:
    """escnn's ``PointwiseAvgPoolAntialiased`` as the depthwise ``nn.Conv2d`` holding its Gaussian filter."""
    channels, _, k, _ = pool.filter.shape
    conv = nn.Conv2d(channels, channels, k, stride=pool.stride, padding=pool.padding, groups=channels, bias=False)
    conv.weight.data.copy_(pool.filter)
    conv.weight.requires_grad_(False)
    return conv


class SteerableLift(nn.Module):
    """``[B, in_channels, H, W] -> [B, fields * |G|, H', W']``, regular fields of ``group`` (see module docstring).

    ``H' = H + 2 * padding - kernel_size + 1 + 2 * pool_padding - blur_size + 1`` with
    ``blur_size = 2 * round(3 * pool_sigma) + 1`` (5 for sigma 0.66); the defaults are the
    seed's (7x7 conv, padding 1, blur padding 0: 129 -> 125 -> 121)."""

    def __init__(self, group: Group, fields: int = 10, kernel_size: int = 7, padding: int = 1,
                 pool_sigma: float = 0.66, pool_padding: int = 0, in_channels: int = 1):
        super().__init__()
        from escnn import nn as enn

        space = gspace(group.name)
        _check_regular_order(space, group)
        self.group = group
        self.fields = fields
        self.in_type = enn.FieldType(space, in_channels * [space.trivial_repr])
        out_type = enn.FieldType(space, fields * [space.regular_repr])
        self.conv = enn.R2Conv(self.in_type, out_type, kernel_size, padding=padding, bias=False)
        self.norm = enn.InnerBatchNorm(out_type)
        self.relu = enn.ReLU(out_type, inplace=True)
        self.blur = enn.PointwiseAvgPoolAntialiased(out_type, sigma=pool_sigma, stride=1, padding=pool_padding)
        self.conv.register_state_dict_post_hook(_drop_derived_buffers)
        self.conv.register_load_state_dict_pre_hook(_ignore_derived_buffers)
        self.conv.register_load_state_dict_post_hook(_refresh_cached_kernel)

    def train(self, mode: bool = True):
        super().train(mode)
        _detach_cached_kernel(self.conv)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from escnn.nn import GeometricTensor

        y = self.blur(self.relu(self.norm(self.conv(GeometricTensor(x, self.in_type)))))
        return y.tensor

    def exported(self) -> nn.Sequential:
        """The same map in plain torch, in eval mode (this block is left untouched): escnn's own
        ``export()`` of the conv, batch norm and ReLU, and the blur as a depthwise conv."""
        import copy

        block = copy.deepcopy(self)
        plain = nn.Sequential(block.conv.export(), block.norm.export(), block.relu.export(),
                              _gaussian_blur_as_conv(block.blur))
        return plain.eval()


class GroupMaxPool(nn.Module):
    """``[B, C * |G|, H, W] -> [B, C, H, W]``: the maximum over each field's |G| orientation
    channels (escnn's ``GroupPooling`` on regular fields). Invariant to any permutation of the
    group axis, so ``pool(rho(g) F) = g . pool(F)``."""

    def __init__(self, group_size: int):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.reshape(b, c // self.group_size, self.group_size, h, w).amax(dim=2)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"
