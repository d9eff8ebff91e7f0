"""Plain vision transformer (ViT) baseline: patches, learned positions, a class token, no symmetry.

``x: [B, 1, H, W]``:

    PatchEmbedding   zero-pad to multiples of ``patch_size`` (see below), Conv2d with
                     kernel = stride = p (a linear map of each non-overlapping p x p patch)
                     -> N = h * w patch tokens [B, N, dim], h = ceil(H / p), w = ceil(W / p)
    + positions      learned table, built for the ``image_size`` grid; other grids interpolate it
    [cls] token      learned, prepended -> [B, 1 + N, dim] (no position of its own: a learned
                     token plus a learned position would be one vector twice)
    depth x ViTBlock pre-norm: x + MSA(LN(x)), x + MLP(LN(x))
    Tap("map")       patch tokens as a grid [B, dim, h, w]
    LayerNorm        -> cls token [B, dim] -> Tap("features") -> Linear(dim, classes)

Defaults (dim 48, depth 4, heads 3 of 16 channels, MLP x2, patch 8) give 93,123 parameters for
3 classes at 129x129 (17 x 17 patch tokens; the position table is 13,920 of them): the middle of
the 60k-120k band of the small models it is compared with (cnn ~80k, eqcvt 64.8k). Dim 64 with
4 heads and depth 4 would be 157k here (18.5k of it positions), so width is traded for keeping depth 4.

Sizes that are not multiples of ``p``: the image is zero-padded to the next multiple, the extra
pixels split between the two sides (the odd one at the bottom / right). Zero is the background of
min-max normalised lensing images, so the padding adds no signal. Grids other than the one the
model was built for (another ``H, W``) use the position table resized by bicubic interpolation
(``align_corners=False``), as DeiT / timm do for fine-tuning at another resolution.

A plain model: the positions and the patch grid tie every weight to an orientation, so the logits
change under a 90-deg rotation of the input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .cost import MAX_LAYERS, ModelCost, count
from .inspection import AttentionRecorder, LensModel, Tap
from .registry import register


def patch_grid(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """Patch tokens per column and row of an ``height x width`` image after padding."""
    return math.ceil(height / patch_size), math.ceil(width / patch_size)


class PatchEmbedding(nn.Module):
    """``[B, C, H, W] -> [B, dim, h, w]``: symmetric zero padding to multiples of ``patch_size``,
    then a linear map of every non-overlapping ``p x p`` patch (a Conv2d with kernel = stride = p)."""

    def __init__(self, patch_size: int, dim: int, in_channels: int = 1):
        super().__init__()
        self.patch_size = patch_size
        self.project = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = patch_grid(x.shape[-2], x.shape[-1], self.patch_size)
        extra_h, extra_w = h * self.patch_size - x.shape[-2], w * self.patch_size - x.shape[-1]
        if extra_h or extra_w:
            x = F.pad(x, (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2))
        return self.project(x)


class PositionEmbedding(nn.Module):
    """Learned positions of a ``grid`` of patch tokens: ``(h, w) -> [1, h * w, dim]`` (row-major).

    On the built grid this is the table itself; any other ``h x w`` gets the table resized by
    bicubic interpolation (``align_corners=False``), so every size reads the same learned map."""

    def __init__(self, grid: tuple[int, int], dim: int):
        super().__init__()
        self.grid = tuple(grid)
        self.table = nn.Parameter(torch.empty(1, grid[0] * grid[1], dim))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == self.grid:
            return self.table
        table = self.table.transpose(1, 2).reshape(1, -1, *self.grid)  # [1, dim, grid_h, grid_w]
        table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)
        return table.flatten(2).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"grid={self.grid}, dim={self.table.shape[-1]}"


class SelfAttention(AttentionRecorder, nn.Module):
    """Multi-head self-attention on token sequences ``[B, prefix + h * w, dim] -> same shape``.

    ``softmax(Q K^T / sqrt(head_dim)) V`` per head over all tokens; ``prefix`` tokens (the class
    token) come before the ``h x w`` patch grid. The fast path is
    ``F.scaled_dot_product_attention``; with ``capture_attention`` set the weights are computed
    explicitly and the patch-to-patch part is recorded: the prefix rows and columns are dropped
    and every row is renormalised to sum to 1, giving ``[B, heads, h * w, h * w]`` on
    ``(h, w)`` grids (token ``i`` at ``divmod(i, w)``) -- where each patch looks among patches."""

    def __init__(self, dim: int, heads: int, prefix: int = 1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads, self.head_dim, self.prefix = heads, dim // heads, prefix
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, n, dim = tokens.shape
        # [B, N, 3 * dim] -> 3 x [B, heads, N, head_dim]
        q, k, v = self.to_qkv(tokens).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.capture_attention:
            weights = torch.softmax(q @ k.transpose(-1, -2) * self.head_dim**-0.5, dim=-1)  # [B, heads, N, N]
            self.record_attention(self.patch_to_patch(weights), grid, grid)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, dim))

    def patch_to_patch(self, weights: torch.Tensor) -> torch.Tensor:
        """``[B, heads, N, N] -> [B, heads, N - prefix, N - prefix]``, rows renormalised to sum to 1."""
        patches = weights[..., self.prefix:, self.prefix:]
        return patches / patches.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


class ViTBlock(nn.Module):
    """Pre-norm transformer block on ``[B, N, dim]``: ``x + MSA(LN(x))``, then ``x + MLP(LN(x))``
    with MLP = Linear(dim, dim * mlp_ratio) -> GELU -> Linear back."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), grid)
        return x + self.mlp(self.mlp_norm(x))


class ViT(LensModel):
    """``[B, in_channels, H, W] -> [B, classes]``, a plain ViT built for ``image_size`` x ``image_size``
    (other sizes interpolate the positions). Taps: ``tokens`` (kind "map", the patch tokens after
    the last block as ``[B, dim, h, w]``) and ``features`` (the normalised class token ``[B, dim]``)."""

    def __init__(self, num_classes: int, image_size: int, patch_size: int = 8, dim: int = 48, depth: int = 4,
                 heads: int = 3, mlp_ratio: int = 2, in_channels: int = 1):
        super().__init__()
        self.embed = PatchEmbedding(patch_size, dim, in_channels)
        self.positions = PositionEmbedding(patch_grid(image_size, image_size, patch_size), dim)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(ViTBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.tokens = Tap("map")
        self.norm = nn.LayerNorm(dim)
        self.features = Tap("features")
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.embed(x)  # [B, dim, h, w]
        b, dim, h, w = patches.shape
        patch_tokens = patches.flatten(2).transpose(1, 2) + self.positions(h, w)  # [B, h * w, dim]
        z = torch.cat([self.cls_token.expand(b, -1, -1), patch_tokens], dim=1)  # [B, 1 + h * w, dim]
        for block in self.blocks:
            z = block(z, (h, w))
        # The map tap sees the grid before the final norm, like a CvT stage's token tap.
        self.tokens(z[:, 1:].transpose(1, 2).reshape(b, dim, h, w))
        return self.head(self.features(self.norm(z[:, 0])))


def vit_cost(num_classes: int, group, image_size: int, patch_size: int = 8, dim: int = 48, depth: int = 4,
             heads: int = 3, mlp_ratio: int = 2) -> ModelCost:
    """Patch embedding, position table, class token, ``depth`` blocks (their ``heads x N x N`` attention
    weights counted), final norm and head; ``N = 1 + h * w`` tokens."""
    patch, dim, depth = count("patch_size", patch_size), count("dim", dim), count("depth", depth, 1, MAX_LAYERS)
    heads, ratio = count("heads", heads), count("mlp_ratio", mlp_ratio)
    if dim % heads:
        raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
    h, w = patch_grid(image_size, image_size, patch)
    tokens, wide = 1 + h * w, dim * ratio
    block = (4 * dim + 3 * dim * dim + 3 * dim + dim * dim + dim + 2 * dim * wide + wide + dim)
    parameters = dim * patch**2 + dim + h * w * dim + dim + depth * block + 2 * dim + dim * num_classes + num_classes
    attention = 3 * heads * tokens**2  # scores, scaled, softmax
    per_block = tokens * (10 * dim + 2 * wide) + attention
    floats = (h * patch) * (w * patch) + 3 * tokens * dim + depth * per_block + 2 * dim + num_classes
    return ModelCost(parameters, floats)


@register("vit", cost=vit_cost, description="plain ViT baseline (8x8 patches, dim 48, depth 4, ~93k parameters), "
          "no built-in symmetry", uses_group=False, invariant=False)
def build_vit(num_classes: int, group, image_size: int, patch_size: int = 8, dim: int = 48, depth: int = 4,
              heads: int = 3, mlp_ratio: int = 2) -> ViT:
    return ViT(num_classes, image_size, patch_size, dim, depth, heads, mlp_ratio)
