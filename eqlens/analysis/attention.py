"""Attention maps over the image: one query's row, and the rollout across blocks.

Inputs are :class:`eqlens.models.AttentionMap` records (weights ``[B, heads, Nq, Nk]``, rows sum
to 1, tokens on a ``query_grid``/``key_grid``, optionally with a group index: token
``(g * H + y) * W + x``). CvT blocks downsample their keys (``key_grid`` coarser than
``query_grid``), so a row is a map on the key grid and the matrix is not square; rollout first
maps the keys back onto the query grid.

Group action: for an equivariant attention block, rotating the input by an exact group element
rotates the query's map with it (after the query position is rotated too); these functions only
move tokens to image positions and never assume any symmetry.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..models.inspection import AttentionMap


def spatial_weights(att: AttentionMap) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """Fold the group index of group tokens away: ``[B, heads, Nq, Nk]`` over (group, space) ->
    ``[B, heads, Hq*Wq, Hk*Wk]`` over space alone.

    Query groups are averaged (every orientation of a query asks equally) and key groups summed
    (where the weight goes, whatever the orientation), so rows still sum to 1."""
    w = att.weights
    (hq, wq), (hk, wk) = att.query_grid, att.key_grid
    if w.shape[-2] != att.query_group * hq * wq or w.shape[-1] != att.key_group * hk * wk:
        raise ValueError(
            f"attention of shape {tuple(w.shape)} does not match query grid {att.query_grid} x{att.query_group} "
            f"and key grid {att.key_grid} x{att.key_group}"
        )
    b, heads = w.shape[:2]
    w = w.reshape(b, heads, att.query_group, hq * wq, att.key_group, hk * wk)
    return w.mean(dim=2).sum(dim=3), att.query_grid, att.key_grid


def token_at(position_yx: tuple[float, float], image_hw: tuple[int, int], grid: tuple[int, int]) -> int:
    """Index of the token of ``grid`` that covers pixel ``position_yx`` of an image of size ``image_hw``."""
    (y, x), (h, w), (gh, gw) = position_yx, image_hw, grid
    row = min(max(int(y * gh / h), 0), gh - 1)
    col = min(max(int(x * gw / w), 0), gw - 1)
    return row * gw + col


def _to_image(maps: torch.Tensor, grid: tuple[int, int], image_hw: tuple[int, int]) -> torch.Tensor:
    """``[B, N]`` token values on ``grid`` -> ``[B, H, W]`` (bilinear; a token covers its cell)."""
    b = maps.shape[0]
    grid_maps = maps.reshape(b, 1, *grid).float()
    return F.interpolate(grid_maps, size=image_hw, mode="bilinear", align_corners=False)[:, 0]


def _fold_keys(x: torch.Tensor, att: AttentionMap) -> torch.Tensor:
    """``[..., key_group * Nk] -> [..., Nk]``: where the weight goes, whatever the key's orientation."""
    if att.key_group == 1:
        return x
    return x.reshape(*x.shape[:-1], att.key_group, -1).sum(dim=-2)


def _query_rows(att: AttentionMap, rows: torch.Tensor) -> torch.Tensor:
    """Spatial query rows ``[B, Nq]`` (a distribution over query positions) times the weights,
    per head: ``[B, heads, Nk]``. Every orientation of a query position asks equally. Only
    vector-matrix products: the ``[Nq, Nk]`` matrices are never copied."""
    w = att.weights
    if att.query_group > 1:
        rows = rows.repeat(1, att.query_group) / att.query_group  # token (g * H + y) * W + x
    return _fold_keys(torch.einsum("bq,bhqk->bhk", rows.to(w.dtype), w), att)


def query_map(
    att: AttentionMap, position_yx: tuple[float, float], image_hw: tuple[int, int], head: int | None = None
) -> torch.Tensor:
    """Where the query token at image pixel ``position_yx`` looks: ``[B, H, W]`` over the image.

    ``head=None`` averages the heads. The row lives on the key grid; it is resampled onto the
    image so maps of blocks with different grids line up with the lens."""
    n_q = att.query_grid[0] * att.query_grid[1]
    one_hot = F.one_hot(torch.tensor(token_at(position_yx, image_hw, att.query_grid)), n_q)
    per_head = _query_rows(att, one_hot.expand(att.weights.shape[0], -1).to(att.weights.device))
    row = per_head.mean(dim=1) if head is None else per_head[:, head]
    return _to_image(row, att.key_grid, image_hw)


def grid_transfer(src: tuple[int, int], dst: tuple[int, int], device=None) -> torch.Tensor:
    """``[N_src, N_dst]`` matrix spreading each token of grid ``src`` over the tokens of grid
    ``dst`` it covers (bilinear footprint); rows sum to 1, so ``A @ T`` keeps rows of ``A`` summing to 1."""
    return _grid_transfer(tuple(src), tuple(dst)).to(device)


@lru_cache(maxsize=16)
def _grid_transfer(src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    n_src = src[0] * src[1]
    eye = torch.eye(n_src).reshape(n_src, 1, *src)
    # Upsampling the indicator of each source token gives its footprint on the destination grid.
    spread = F.interpolate(eye, size=dst, mode="bilinear", align_corners=False).reshape(n_src, -1).clamp_min(0)
    return spread / spread.sum(dim=1, keepdim=True).clamp_min(1e-12)


def square_attention(att: AttentionMap) -> tuple[torch.Tensor, tuple[int, int]]:
    """Head-averaged attention as a square ``[B, Nq, Nq]`` matrix over the query grid (keys of a
    coarser grid spread back onto the query tokens they summarise)."""
    w, q_grid, k_grid = spatial_weights(att)
    w = w.mean(dim=1)
    if k_grid != q_grid:
        w = w @ grid_transfer(k_grid, q_grid, device=w.device).to(w.dtype)
    return w, q_grid


def rollout(atts: Sequence[AttentionMap], residual: float = 0.5) -> tuple[torch.Tensor, tuple[int, int]]:
    """Attention rollout (Abnar & Zuidema 2020) across blocks, first to last.

    Each block: average heads, map keys onto the query grid, add ``residual * I`` for the skip
    connection, renormalise rows, multiply. When a block's query grid differs from the previous
    block's, the running product is carried onto the new grid. Returns ``([B, N, N], grid)``:
    row ``i`` says how much each input token (of the first block's grid) feeds output token ``i``."""
    if not atts:
        raise ValueError("rollout needs at least one attention map")
    result, grid, first_grid = None, None, None  # result: [B, N_current, N_first]
    for att in atts:
        a, q_grid = square_attention(att)
        a = a + residual * torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = a / a.sum(dim=-1, keepdim=True)
        if result is None:
            result, first_grid = a, q_grid
        else:
            if q_grid != grid:
                # A stage change (strided conv) builds each new token from the old tokens it covers.
                carry = grid_transfer(q_grid, grid, device=a.device).to(a.dtype)  # [Nq_new, Nq_old]
                result = carry @ result
            result = a @ result
        grid = q_grid
    return result, first_grid


def rollout_map(
    atts: Sequence[AttentionMap], position_yx: tuple[float, float], image_hw: tuple[int, int], residual: float = 0.5
) -> torch.Tensor:
    """Rollout row of the output token at image pixel ``position_yx``, over the image: ``[B, H, W]``.

    Output tokens live on the last block's grid, inputs on the first block's grid. Equal to the
    row of :func:`rollout`, but carried as one row vector from the last block to the first
    (vector-matrix products, never an ``N x N`` product: at 129 px a CvT grid has 4225 tokens)."""
    if not atts:
        raise ValueError("rollout needs at least one attention map")
    first_grid = atts[0].query_grid
    row, grid = None, None  # row: [B, N of the current block's query grid]
    for att in reversed(atts):
        q_grid, k_grid, w = att.query_grid, att.key_grid, att.weights
        if row is None:
            row = F.one_hot(torch.tensor(token_at(position_yx, image_hw, q_grid)), q_grid[0] * q_grid[1])
            row = row.to(w.device, w.dtype).expand(w.shape[0], -1)
        elif q_grid != grid:
            # The later block's input tokens were built from this block's output tokens.
            row = row @ grid_transfer(grid, q_grid, device=w.device).to(w.dtype)
        step = _query_rows(att, row).mean(dim=1)  # row @ (head mean of A), on the key grid
        if k_grid != q_grid:
            step = step @ grid_transfer(k_grid, q_grid, device=w.device).to(w.dtype)
        # (A_sq + r I) / (1 + r): A_sq's rows sum to 1, so this is the row renormalisation.
        row = (step + residual * row) / (1.0 + residual)
        grid = q_grid
    return _to_image(row, first_grid, image_hw)
