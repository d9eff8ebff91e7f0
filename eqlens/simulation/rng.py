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
* Poisson: inversion of one uniform per element, see :func:`poisson` (index lists on the CPU, fixed
  steps with no host syncs on accelerators and under ``torch.compile``: the same counts).
"""

from __future__ import annotations

import math

import numpy as np
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
# Inversion steps: counts are capped at this. P(X >= 56 | mean 20) = 3e-11, below the smallest
# float64 uniform tail (2**-33 from the top); float32 uniforms stop at 2**-25 (X <= 49 at mean 20).
POISSON_INVERSION_STEPS = 56
_COMPACT_EVERY = 16  # CPU: drop finished elements (and stop when none are left) every this many steps


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int32 bit patterns."""
    return (x >> s) & ((1 << (32 - s)) - 1)


def _prepare(lane) -> tuple:
    """``(s1, m1, s2, m2, s3)`` -> ((shift, mask, multiplier), ...) with the logical-shift masks and the
    multipliers as int32 values; ints, or ``[2]`` int32 tensors when two lanes are mixed at once."""
    s1, m1, s2, m2, s3 = lane
    steps = ((s1, m1), (s2, m2), (s3, None))
    return tuple((s, (1 << (32 - s)) - 1, None if m is None else _signed(m)) for s, m in steps)


def _mix_(x: torch.Tensor, lane: tuple) -> torch.Tensor:
    """A mixer (from :func:`_prepare`) applied in place to ``x``, which the caller owns."""
    for shift, mask, mult in lane:
        x ^= (x >> shift).bitwise_and_(mask)
        if mult is not None:
            x *= mult
    return x


def _mix(x: torch.Tensor, lane: tuple[int, int, int, int, int]) -> torch.Tensor:
    return _mix_(x.clone(), _prepare(lane))


def _mix_int(x: int, lane: tuple[int, int, int, int, int]) -> int:
    """The same mixer on a Python int (a 32-bit pattern): for the words a whole batch shares."""
    s1, m1, s2, m2, s3 = lane
    x ^= x >> s1
    x = (x * m1) & 0xFFFFFFFF
    x ^= x >> s2
    x = (x * m2) & 0xFFFFFFFF
    return x ^ (x >> s3)


_MIX_A, _MIX_B = _prepare(_LANE_A), _prepare(_LANE_B)
_BOTH_LANES_CACHE: dict = {}


def _both_lanes(device) -> tuple:
    """Lanes A and B side by side: each shift, mask and multiplier a ``[2]`` int32 tensor on ``device``."""
    key = str(device)
    if key not in _BOTH_LANES_CACHE:
        _BOTH_LANES_CACHE[key] = tuple(
            tuple(None if va is None else torch.tensor([va, vb], dtype=torch.int32, device=device)
                  for va, vb in zip(step_a, step_b, strict=True))
            for step_a, step_b in zip(_MIX_A, _MIX_B, strict=True)
        )  # fmt: skip
    return _BOTH_LANES_CACHE[key]


def image_keys(seed: int, indices: torch.Tensor, stream: int) -> torch.Tensor:
    """64-bit keys of ``(seed, index, stream)`` as two 32-bit lanes: ``indices [B] -> [B, 2]`` int32.

    The words are absorbed in the order seed (low, high), index (low, high), stream. The seed's words
    are the same for the whole batch, so they are absorbed in Python; the rest runs on both lanes at
    once (``[B, 2]`` tensors). Negative indices raise ``ValueError`` when ``indices`` is on the CPU;
    on an accelerator that check would be a host sync, so :class:`LensSimulator` checks on the host."""
    indices = torch.as_tensor(indices, dtype=torch.int64)
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    if indices.device.type == "cpu" and bool((indices < 0).any()):
        raise ValueError("seeds and image indices must be non-negative")
    state = [_INIT_A, _INIT_B]
    for word in (int(seed) & 0xFFFFFFFF, int(seed) >> 32):
        state = [_mix_int(state[0] ^ word, _LANE_A), _mix_int(state[1] ^ word, _LANE_B)]
    lanes = _both_lanes(indices.device)
    low = (indices & 0xFFFFFFFF) - ((indices & 0x80000000) << 1)  # low word as the int32 with its bits
    low = low.to(torch.int32)
    # the seed's states enter as scalars, not as a tensor copied to the device (a host sync on CUDA)
    keys = _mix_(torch.stack([low ^ _signed(state[0]), low ^ _signed(state[1])], dim=-1), lanes)
    keys = _mix_(keys ^ (indices >> 32).to(torch.int32)[..., None], lanes)
    keys ^= _signed(stream)
    return _mix_(keys, lanes)


def random_words(keys: torch.Tensor, elements: torch.Tensor) -> torch.Tensor:
    """32-bit words (int32 bit patterns) for ``keys [B, 2]`` and int32 ``elements`` broadcastable to ``[B, ...]``."""
    shape = (keys.shape[0],) + (1,) * max(elements.dim() - 1, 0)
    ka = keys[:, 0].reshape(shape)
    kb = keys[:, 1].reshape(shape)
    x = _mix_(elements ^ ka, _MIX_A)
    x ^= kb
    return _mix_(x, _MIX_B)


def words_to_uniform(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """32-bit words -> uniforms in the open interval (0, 1) (see the module notes for the bits used)."""
    if dtype == torch.float64:
        return ((words.to(torch.int64) & 0xFFFFFFFF).to(dtype) + 0.5) * 2.0**-32
    # (2^24 - 1) + 0.5 rounds up to 2^24 in float32, i.e. u = 1 (an infinite normal quantile): cap it
    # at the largest float32 below 1, which leaves every other value unchanged.
    return _shr(words, 8).to(dtype).add_(0.5).mul_(2.0**-24).clamp_(max=1.0 - 2.0**-24)


def uniform(keys: torch.Tensor, n: int, dtype: torch.dtype = torch.float64, offset: int = 0) -> torch.Tensor:
    """``[B, n]`` uniforms in (0, 1): elements ``offset .. offset + n - 1`` of each image's stream."""
    elements = torch.arange(offset, offset + n, device=keys.device, dtype=torch.int32)[None]
    return words_to_uniform(random_words(keys, elements), dtype)


def box_muller(u1: torch.Tensor, u2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent standard normals from two independent uniforms in (0, 1)."""
    return _box_muller_(u1.clone(), u2.clone())


def _box_muller_(u1: torch.Tensor, u2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`box_muller` overwriting its inputs (same arithmetic, no temporaries)."""
    r = u1.log_().mul_(-2.0).sqrt_()
    angle = u2.mul_(2.0 * math.pi)
    return torch.cos(angle).mul_(r), angle.sin_().mul_(r)


def normal_pair(keys: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent ``[B, *shape]`` standard-normal fields of one stream (element e uses words 2e, 2e+1)."""
    n = math.prod(shape)
    e2 = torch.arange(0, 2 * n, 2, device=keys.device, dtype=torch.int32)[None]
    u1 = words_to_uniform(random_words(keys, e2), dtype)
    u2 = words_to_uniform(random_words(keys, e2 + 1), dtype)
    z1, z2 = _box_muller_(u1, u2)
    return z1.reshape(-1, *shape), z2.reshape(-1, *shape)


def poisson(mean: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Poisson counts of ``mean [B, ...]`` (>= 0), element e of image b inverting uniform e of ``keys[b]``.

    One uniform u per element, mapped through (an approximation of) the inverse Poisson CDF:

    * mean < ``POISSON_INVERSION_MAX_MEAN`` (20): exact inversion, X = #{k < 56 : F(k) < u}, with F
      the running sum of the pmf (see :func:`_invert_poisson_cdf`).
    * larger means: normal approximation with the Cornish-Fisher skewness term and a continuity
      correction, ``X = floor(m + sqrt(m) z + (z**2 - 1) / 6 + 1/2)`` with z = Phi^-1(u): mean m and
      variance m up to O(1/sqrt(m)), skewness 1/sqrt(m) as a Poisson's. Its CDF differs from the
      exact one by at most 7e-4 at m = 20, less above (tested against the exact pmf).

    The counts are a function of (mean, u) only, computed two ways with the same arithmetic: on the
    CPU, the elements that need work are gathered first (index lists: the sky is mostly mean 0 or
    large); on other devices and under ``torch.compile`` every element takes the same fixed steps
    (no data-dependent shapes, no host syncs). Returns counts in ``mean``'s float dtype.
    """
    shape = mean.shape
    flat = mean.reshape(-1)
    e = torch.arange(flat.numel() // shape[0], device=mean.device, dtype=torch.int32)[None]
    u = words_to_uniform(random_words(keys, e), flat.dtype).reshape(-1)
    if mean.device.type != "cpu" or torch.compiler.is_compiling():
        return _poisson_fixed_steps(flat, u).reshape(shape)

    counts = torch.zeros_like(flat)
    means = flat.detach().numpy()  # numpy's masks and flatnonzero are several times faster than torch's here
    big = torch.from_numpy(np.flatnonzero(means >= POISSON_INVERSION_MAX_MEAN))  # typically 10-25% of pixels
    counts.index_copy_(0, big, _normal_approximation(flat.index_select(0, big), u.index_select(0, big)))
    # mean 0 (the clipped half of the sky) always gives 0: only 0 < mean < 20 needs the inversion
    idx = torch.from_numpy(np.flatnonzero((means > 0) & (means < POISSON_INVERSION_MAX_MEAN)))
    counts.index_copy_(0, idx, _invert_poisson_cdf(flat.index_select(0, idx), u.index_select(0, idx), compact=True))
    return counts.reshape(shape)


def _true_positions(mask: torch.Tensor) -> torch.Tensor:
    """Positions of the true elements of a 1-D CPU bool tensor (numpy's flatnonzero: ~2x torch's nonzero)."""
    return torch.from_numpy(np.flatnonzero(mask.numpy()))


def _normal_approximation(m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    z = torch.special.ndtri(u)
    x = torch.sqrt(m).mul_(z).add_(m)
    return x.add_(z.mul_(z).sub_(1.0).div_(6.0)).add_(0.5).floor_().clamp_(min=0.0)


def _poisson_fixed_steps(flat: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """:func:`poisson` without data-dependent shapes: both branches everywhere, then a select."""
    small = flat < POISSON_INVERSION_MAX_MEAN
    inverted = _invert_poisson_cdf(torch.where(small, flat, torch.zeros_like(flat)), u, compact=False)
    approximated = _normal_approximation(torch.where(small, torch.full_like(flat, 1e3), flat), u)
    return torch.where(small, inverted, approximated)


def _invert_poisson_cdf(lam: torch.Tensor, u: torch.Tensor, compact: bool) -> torch.Tensor:
    """X = #{k < POISSON_INVERSION_STEPS : F(k) < u}, F(k) = sum of exp(-lam) lam^j / j! for j <= k (1-D inputs).

    Step k adds pmf(k) = pmf(k - 1) * lam / k to the running CDF and counts whether u is still above
    it; these are the same float operations in both modes, so both give the same counts. All elements
    share the step k (branch-free). ``compact`` (eager CPU): every few steps, drop the elements that are
    done and stop when none is left -- most stop at X <= mean + a few sqrt(mean)."""
    term = torch.exp(-lam)
    cdf = term.clone()
    count = torch.zeros_like(lam)
    above = torch.empty_like(lam) if compact else None
    pieces, positions = [], None  # (positions in the input, None = all; their counts): later ones win
    for step in range(1, POISSON_INVERSION_STEPS + 1):
        if compact:  # eager CPU: into a float buffer, skipping a bool temporary and its conversion
            count += torch.gt(u, cdf, out=above)  # F(step - 1) < u
        else:
            count = count + (u > cdf).to(count.dtype)
        if step == POISSON_INVERSION_STEPS:
            break
        term.mul_(lam).mul_(1.0 / step)
        cdf += term
        if compact and step % _COMPACT_EVERY == 0:
            going = _true_positions(torch.gt(u, cdf))
            if going.numel() == lam.numel():
                continue
            pieces.append((positions, count))
            if not going.numel():
                return _scatter_pieces(pieces)
            positions = going if positions is None else positions.index_select(0, going)
            lam, u, term, cdf, count = (t.index_select(0, going) for t in (lam, u, term, cdf, count))
            above = torch.empty_like(lam)
    return _scatter_pieces(pieces + [(positions, count)])


def _scatter_pieces(pieces: list) -> torch.Tensor:
    out = pieces[0][1]  # the first piece covers every element
    for positions, values in pieces[1:]:
        out.index_copy_(0, positions, values)
    return out
