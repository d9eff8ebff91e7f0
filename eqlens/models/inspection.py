"""One inspection interface for every model: named plain-tensor taps and captured attention.

A model marks the boundaries worth looking at with :class:`Tap` modules (identities, so Captum's
layer methods can hook them and escnn's ``GeometricTensor`` never leaks out) and computes its
attention in modules that mix in :class:`AttentionRecorder`. :meth:`LensModel.inspect` runs one
forward pass and hands back an :class:`Inspection` of plain tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..groups import Group


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block, then back in the mode it was in (training or not), even
    when the block raises. Gradients are untouched: add ``torch.no_grad()`` where none are needed.
    The one such helper; :meth:`LensModel.eval_mode` is the same for registry models."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class Tap(nn.Identity):
    """A named, plain-tensor boundary inside a model.

    ``kind="group"``: the tensor is a regular feature field ``[B, C * |G|, H, W]`` whose |G|
    orientation channels of each field are contiguous (escnn's layout); :meth:`LensModel.inspect`
    hands it back as ``[B, C, |G|, H, W]``. ``kind="features"``: pre-logit features ``[B, D]``.
    ``kind="map"``: any other ``[B, C, H, W]`` map (e.g. a token grid)."""

    def __init__(self, kind: str = "map", group_size: int = 1):
        super().__init__()
        if kind not in ("group", "features", "map"):
            raise ValueError(f"unknown tap kind {kind!r}")
        self.kind = kind
        self.group_size = group_size

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, group_size={self.group_size}"


@dataclass
class AttentionMap:
    """Attention weights ``[B, heads, Nq, Nk]`` (rows sum to 1) with the grids of the tokens:
    query token ``i`` sits at ``divmod(i, query_grid[1])`` of a ``query_grid`` map, likewise keys.
    ``query_group``/``key_group`` > 1 when tokens also carry a group index (GSA-Nets): then the
    token index is ``(g * H + y) * W + x``."""

    weights: torch.Tensor
    query_grid: tuple[int, int]
    key_grid: tuple[int, int]
    query_group: int = 1
    key_group: int = 1


class AttentionRecorder:
    """Mixin for attention modules: when ``capture_attention`` is set, keep the last weights."""

    capture_attention: bool = False
    last_attention: AttentionMap | None = None

    def record_attention(self, weights: torch.Tensor, query_grid, key_grid, query_group: int = 1, key_group: int = 1):
        if self.capture_attention:
            self.last_attention = AttentionMap(
                weights.detach(), tuple(query_grid), tuple(key_grid), query_group, key_group
            )


@dataclass
class Inspection:
    """What :meth:`LensModel.inspect` returns, all plain tensors.

    - ``logits``: ``[B, classes]``;
    - ``features``: pre-logit features ``[B, D]`` (or None if the model has no such tap);
    - ``group_channels``: tap name -> ``[B, C, |G|, H, W]``;
    - ``maps``: tap name -> ``[B, C, H, W]`` for other taps;
    - ``attention``: attention module name -> :class:`AttentionMap`.
    """

    logits: torch.Tensor
    features: torch.Tensor | None = None
    group_channels: dict[str, torch.Tensor] = field(default_factory=dict)
    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    attention: dict[str, AttentionMap] = field(default_factory=dict)


class LensModel(nn.Module):
    """Base class of every model in the registry.

    Subclasses implement ``forward(x: [B, 1, H, W]) -> logits [B, classes]`` and place
    :class:`Tap` modules and :class:`AttentionRecorder` modules where they matter. ``group`` is
    the symmetry group the architecture is built for (None for plain models) and
    ``invariant`` whether the logits are exactly invariant under its exact elements."""

    group: Group | None = None
    invariant: bool = False
    build_config: dict | None = None  # set by eqlens.models.create: rebuilds the model

    eval_mode = eval_mode  # ``with model.eval_mode(): ...``

    def taps(self) -> dict[str, Tap]:
        """Tap modules by their module path (usable as Captum ``layer=`` arguments)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, Tap)}

    def attention_modules(self) -> dict[str, nn.Module]:
        return {name: m for name, m in self.named_modules() if isinstance(m, AttentionRecorder)}

    @contextmanager
    def capturing(self, attention: bool = True):
        """Collect the outputs of every tap (and attention, if asked) during the block."""
        store: dict[str, torch.Tensor] = {}
        handles = []
        for name, tap in self.taps().items():
            handles.append(tap.register_forward_hook(lambda m, i, o, n=name: store.__setitem__(n, o)))
        recorders = self.attention_modules().values() if attention else ()
        for rec in recorders:
            rec.capture_attention, rec.last_attention = True, None
        try:
            yield store
        finally:
            for h in handles:
                h.remove()
            for rec in recorders:
                rec.capture_attention = False

    def inspect(self, x: torch.Tensor, attention: bool = True) -> Inspection:
        """One forward pass of ``x: [B, 1, H, W]``; every tap and attention map as plain tensors."""
        taps = self.taps()
        with self.capturing(attention) as store:
            logits = self(x)
            attn = {}
            if attention:
                for name, rec in self.attention_modules().items():
                    if rec.last_attention is not None:
                        attn[name] = rec.last_attention
        result = Inspection(logits=logits, attention=attn)
        for name, value in store.items():
            tap = taps[name]
            if tap.kind == "features":
                result.features = value
            elif tap.kind == "group":
                b, cg, h, w = value.shape
                result.group_channels[name] = value.reshape(b, cg // tap.group_size, tap.group_size, h, w)
            else:
                result.maps[name] = value
        return result
