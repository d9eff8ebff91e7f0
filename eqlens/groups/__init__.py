"""Groups (C_N, D_N) and how they act on images and on group-channel tensors."""

from .actions import (
    act_on_group_channels,
    act_on_image,
    circular_mask,
    rotate,
    rotate_exact,
    stabilise_group_channels,
)
from .group import DEFAULT_GROUP, SUPPORTED_GROUPS, Group, GroupElement, get_group

__all__ = [
    "DEFAULT_GROUP",
    "SUPPORTED_GROUPS",
    "Group",
    "GroupElement",
    "act_on_group_channels",
    "act_on_image",
    "circular_mask",
    "get_group",
    "rotate",
    "rotate_exact",
    "stabilise_group_channels",
]
