"""Counter-based random numbers: every draw is a pure function of (seed, image index, stream, element).

Why not ``torch.Generator``: one generator per batch makes an image depend on its batch-mates and
on the batch size; one generator per image is a Python loop. A hash of the counter needs neither:
the same (seed, index) gives the same numbers in any batch, on CPU and CUDA, and it is only
integer element-wise ops, which ``torch.compile`` fuses.

The hash works on 32-bit words in int32 tensors (int64 multiplies are not vectorised on most CPUs
and cost ~15x more). Multiplication wraps modulo 2**32 (two's complement, as every torch backend
computes it); right shifts are made logical by masking the sign-extended bits. A test checks the
tensors against a pure-Python reference of the same hash, bit for bit.

* Image key: (seed, index, stream) are absorbed word by word into two independent 32-bit lanes
  (different multipliers), giving a 64-bit key (k_a, k_b). Two images collide only if both lanes do.
* Element word: ``mix_b(mix_a(element ^ k_a) ^ k_b)``; two rounds so that neighbouring elements
  and neighbouring keys give unrelated words.
* Uniforms in the open interval (0, 1): float64 uses all 32 bits, ``(w + 0.5) / 2**32``; float32 the
  top 24, ``((w >> 8) + 0.5) / 2**24``, which is exact in float32 and never rounds to 0 or 1.
* Normals: Box-Muller on two uniforms, both outputs used (they are independent).
* Poisson: inversion of one uniform per element, see :func:`poisson`.
"""

from __future__ import annotations

import math

import torch

# Two well-studied 32-bit mixers: (shift, multiplier, shift, multiplier, shift).
_LANE_A = (16, 0x7FEB352D, 15, 0x846CA68B, 16)  # "lowbias32" (C. Wellons, hash-prospector)
_LANE_B = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)  # MurmurHash3 fmix32
_INIT_A, _INIT_B = 0x243F6A88, 0x13198A2E  # digits of pi: arbitrary but fixed starting states


def _signed(v: int) -> int:
    """A 32-bit pattern as the int32 value with the same bits."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


# Named streams: each random quantity has its own, so adding one never changes another.
STREAMS = {
    "lens": 1,
    "source": 2,
    "instrument": 3,
    "subhalos": 4,
    "vortex": 5,
    "noise_gauss": 6,
    "poisson": 7,
}

# Poisson means below this use exact inversion; above it the corrected normal approximation.
POISSON_INVERSION_MAX_MEAN = 20.0
_POISSON_MAX_STEPS = 200  # inversion steps; P(X > 200 | mean 20) is far below 2**-53


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int32 bit patterns."""
    return (x >> s) & ((1 << (32 - s)) - 1)


def _mix(x: torch.Tensor, lane: tuple[int, int, int, int, int]) -> torch.Tensor:
    s1, m1, s2, m2, s3 = lane
    x = x ^ _shr(x, s1)
    x = x * _signed(m1)
    x = x ^ _shr(x, s2)
    x = x * _signed(m2)
    return x ^ _shr(x, s3)


def _words(value: int | torch.Tensor, device) -> list[torch.Tensor]:
    """A non-negative integer (< 2**63) or int64 tensor as its low and high 32-bit words (int32)."""
    t = torch.as_tensor(value, dtype=torch.int64, device=device)
    if bool((t < 0).any()):
        raise ValueError("seeds and image indices must be non-negative")
    words = []
    for w in (t & 0xFFFFFFFF, (t >> 32) & 0xFFFFFFFF):
        words.append(torch.where(w >= 1 << 31, w - (1 << 32), w).to(torch.int32))
    return words


def image_keys(seed: int, indices: torch.Tensor, stream: int) -> torch.Tensor:
    """64-bit keys of ``(seed, index, stream)`` as two 32-bit lanes: ``indices [B] -> [B, 2]`` int32."""
    indices = torch.as_tensor(indices, dtype=torch.int64)
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    words = [*_words(int(seed), indices.device), *_words(indices, indices.device), _words(stream, indices.device)[0]]
    ka = torch.full(indices.shape, _INIT_A, dtype=torch.int32, device=indices.device)
    kb = torch.full(indices.shape, _INIT_B, dtype=torch.int32, device=indices.device)
    for w in words:
        ka = _mix(ka ^ w, _LANE_A)
        kb = _mix(kb ^ w, _LANE_B)
    return torch.stack([ka, kb], dim=-1)


def random_words(keys: torch.Tensor, elements: torch.Tensor) -> torch.Tensor:
    """32-bit words (int32 bit patterns) for ``keys [B, 2]`` and int32 ``elements`` broadcastable to ``[B, ...]``."""
    shape = (keys.shape[0],) + (1,) * max(elements.dim() - 1, 0)
    ka = keys[:, 0].reshape(shape)
    kb = keys[:, 1].reshape(shape)
    return _mix(_mix(elements ^ ka, _LANE_A) ^ kb, _LANE_B)


def words_to_uniform(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """32-bit words -> uniforms in the open interval (0, 1) (see the module notes for the bits used)."""
    if dtype == torch.float64:
        return ((words.to(torch.int64) & 0xFFFFFFFF).to(dtype) + 0.5) * 2.0**-32
    return (_shr(words, 8).to(dtype) + 0.5) * 2.0**-24


def uniform(keys: torch.Tensor, n: int, dtype: torch.dtype = torch.float64, offset: int = 0) -> torch.Tensor:
    """``[B, n]`` uniforms in (0, 1): elements ``offset .. offset + n - 1`` of each image's stream."""
    elements = torch.arange(offset, offset + n, device=keys.device, dtype=torch.int32)[None]
    return words_to_uniform(random_words(keys, elements), dtype)


def box_muller(u1: torch.Tensor, u2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent standard normals from two independent uniforms in (0, 1)."""
    r = torch.sqrt(-2.0 * torch.log(u1))
    angle = (2.0 * math.pi) * u2
    return r * torch.cos(angle), r * torch.sin(angle)


def normal_pair(keys: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent ``[B, *shape]`` standard-normal fields of one stream (element e uses words 2e, 2e+1)."""
    n = math.prod(shape)
    e = torch.arange(n, device=keys.device, dtype=torch.int32)[None]
    u1 = words_to_uniform(random_words(keys, 2 * e), dtype)
    u2 = words_to_uniform(random_words(keys, 2 * e + 1), dtype)
    z1, z2 = box_muller(u1, u2)
    return z1.reshape(-1, *shape), z2.reshape(-1, *shape)


def poisson(mean: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Poisson counts of ``mean [B, ...]`` (>= 0), element e of image b inverting uniform e of ``keys[b]``.

    One uniform u per element, mapped through (an approximation of) the inverse Poisson CDF:

    * mean < ``POISSON_INVERSION_MAX_MEAN`` (20): exact inversion, X = #{k : F(k) < u}, summing the pmf
      term by term. All elements start at k = 0 together, so the step k is shared and the inner steps
      are branch-free; elements already done are dropped between steps (most sky pixels stop at 0).
    * larger means: normal approximation with the Cornish-Fisher skewness term and a continuity
      correction, ``X = floor(m + sqrt(m) z + (z**2 - 1) / 6 + 1/2)`` with z = Phi^-1(u): mean m and
      variance m up to O(1/sqrt(m)), skewness 1/sqrt(m) as a Poisson's. Its CDF differs from the
      exact one by at most 7e-4 at m = 20, less above (tested against the exact pmf).
    Returns counts in ``mean``'s float dtype.
    """
    shape = mean.shape
    flat = mean.reshape(shape[0], -1)
    e = torch.arange(flat.shape[1], device=mean.device, dtype=torch.int32)[None]
    u = words_to_uniform(random_words(keys, e), flat.dtype)

    small = flat < POISSON_INVERSION_MAX_MEAN
    counts = torch.zeros_like(flat).reshape(-1)
    big = (~small).reshape(-1).nonzero().squeeze(1)  # typically ~10% of the pixels: the arcs
    m = flat.reshape(-1)[big]
    z = torch.special.ndtri(u.reshape(-1)[big])
    counts[big] = torch.floor(m + torch.sqrt(m) * z + (z * z - 1.0) / 6.0 + 0.5).clamp(min=0.0)

    idx = small.reshape(-1).nonzero().squeeze(1)
    lam = flat.reshape(-1)[idx]
    target = u.reshape(-1)[idx]
    term = torch.exp(-lam)
    cdf = term.clone()
    k = torch.zeros_like(lam)
    step = 0
    while idx.numel() and step < _POISSON_MAX_STEPS:
        # Most pixels stop at k = 0 or 1: drop finished ones after each of the first steps, then every 4.
        for _ in range(1 if step < 4 else 4):
            going = target > cdf
            k = k + going
            step += 1
            term = term * lam * (1.0 / step)
            cdf = cdf + term
        going = target > cdf
        counts[idx] = k  # final for those done; overwritten later for the rest
        idx, lam, target, term, cdf, k = (t[going] for t in (idx, lam, target, term, cdf, k))
    return counts.reshape(shape)
