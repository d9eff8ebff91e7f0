"""Finite rotation groups of the plane: the cyclic groups C_N and the dihedral groups D_N.

An element is stored as a pair ``(flip, rot)`` with ``flip`` in {0, 1} and ``rot`` in 0..N-1 and
stands for the planar map

    g = r^rot m^flip,

where ``r`` is the counter-clockwise rotation by 2*pi/N and ``m`` the mirror x -> -x (left-right
flip of an image, ``torch.flip(x, dims=[-1])``). The mirror acts first, then the rotation.
Composition follows from ``m r = r^-1 m``:

    (r^a m^b)(r^c m^d) = r^(a + (-1)^b c) m^(b + d).

Elements are numbered ``index = flip * N + rot``: for C_N the index is the rotation count, for
D_N the first N indices are the rotations and the next N the reflections. This numbering is
the order of the group axis of every group-channel tensor ``[B, C, |G|, H, W]`` in eqlens, which
for C_N is exactly escnn's regular-representation order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class GroupElement:
    """One element ``r^rot m^flip`` of a group of order ``N`` rotations (see module docstring)."""

    rot: int
    flip: int
    order: int

    @property
    def angle_deg(self) -> float:
        """Rotation angle of the element in degrees, counter-clockwise, in [0, 360)."""
        return 360.0 * self.rot / self.order

    @property
    def angle(self) -> float:
        """Rotation angle in radians."""
        return 2.0 * math.pi * self.rot / self.order

    @property
    def index(self) -> int:
        """Position of the element on the group axis: ``flip * N + rot``."""
        return self.flip * self.order + self.rot

    @property
    def is_exact_on_pixels(self) -> bool:
        """Whether the element acts on a square pixel grid without interpolation
        (multiples of 90 deg, with or without the flip)."""
        return (4 * self.rot) % self.order == 0

    def __str__(self) -> str:
        text = f"rot {self.angle_deg:g} deg"
        return text + " after flip" if self.flip else text


@dataclass(frozen=True)
class Group:
    """The cyclic group C_N (``dihedral=False``) or the dihedral group D_N (``dihedral=True``)."""

    order_rotations: int
    dihedral: bool = False

    def __post_init__(self) -> None:
        if self.order_rotations < 1:
            raise ValueError(f"a group needs at least one rotation, got N={self.order_rotations}")

    @property
    def name(self) -> str:
        return f"{'D' if self.dihedral else 'C'}{self.order_rotations}"

    @property
    def order(self) -> int:
        """|G|: N for C_N, 2N for D_N."""
        return self.order_rotations * (2 if self.dihedral else 1)

    def __len__(self) -> int:
        return self.order

    def __str__(self) -> str:
        return self.name

    @cached_property
    def elements(self) -> tuple[GroupElement, ...]:
        """All elements, in group-axis order (``index = flip * N + rot``)."""
        n = self.order_rotations
        flips = (0, 1) if self.dihedral else (0,)
        return tuple(GroupElement(rot, flip, n) for flip in flips for rot in range(n))

    @property
    def identity(self) -> GroupElement:
        return self.elements[0]

    def element(self, rot: int, flip: int = 0) -> GroupElement:
        if flip and not self.dihedral:
            raise ValueError(f"{self.name} has no reflections")
        return GroupElement(rot % self.order_rotations, int(bool(flip)), self.order_rotations)

    def compose(self, g: GroupElement, h: GroupElement) -> GroupElement:
        """The product ``g h`` (apply ``h`` first, then ``g``)."""
        rot = g.rot + (-h.rot if g.flip else h.rot)
        return self.element(rot, g.flip ^ h.flip)

    def inverse(self, g: GroupElement) -> GroupElement:
        """``g^-1``: a reflection is its own inverse, a rotation by k is undone by -k."""
        return g if g.flip else self.element(-g.rot)

    @cached_property
    def exact_elements(self) -> tuple[GroupElement, ...]:
        """The elements that act on square pixel grids exactly (90-deg multiples and flips)."""
        return tuple(g for g in self.elements if g.is_exact_on_pixels)

    @cached_property
    def exact_turns_deg(self) -> tuple[float, ...]:
        """The angles (deg, [0, 360), ascending) of the rotations among :attr:`exact_elements`, mirrors left out:
        (0, 90, 180, 270) for C4, C8, D4 and D8; (0,) for C1."""
        return tuple(sorted({g.angle_deg % 360.0 for g in self.exact_elements if not g.flip}))

    def regular_permutation(self, g: GroupElement) -> list[int]:
        """Indices ``p`` such that ``(rho(g) F)[h] = F[p[h]]`` on the group axis, i.e.
        ``p[h] = index(g^-1 h)``: the left-regular representation as a permutation."""
        g_inv = self.inverse(g)
        return [self.compose(g_inv, h).index for h in self.elements]


_GROUP_NAME = re.compile(r"^\s*([CcDd])\s*(\d+)\s*$")


def get_group(name: str | Group) -> Group:
    """Parse a group name such as ``"C4"``, ``"C8"``, ``"D4"`` or ``"D8"`` (case-insensitive)."""
    if isinstance(name, Group):
        return name
    match = _GROUP_NAME.match(str(name))
    if not match:
        raise ValueError(f"unknown group {name!r}: use C<N> or D<N>, e.g. C4, C8, D4, D8")
    kind, n = match.group(1).upper(), int(match.group(2))
    if n < 1 or n > 64:
        raise ValueError(f"unknown group {name!r}: N must be between 1 and 64")
    return Group(n, dihedral=kind == "D")


SUPPORTED_GROUPS = ("C4", "C8", "D4", "D8")
DEFAULT_GROUP = "C4"  # the group of a run, a model or a view that names none: the one place this default lives
