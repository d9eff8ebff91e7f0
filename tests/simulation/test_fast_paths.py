"""Fast paths give the numbers of the plain definitions: hash keys, sync-free Poisson sampler, SIE at q -> 1."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from eqlens.simulation import LensSimulator, get_config, rng
from eqlens.simulation.profiles import SIE

# Keys by the definition (absorb seed low, high, index low, high, stream into each lane's mixer), worked out
# once and frozen: image_keys must keep giving them bit for bit, whatever its vectorised path does.
FROZEN_KEYS = {
    0: [(4166874592, 3480628550), (1337718969, 2670628659), (203370082, 1929856898), (51441773, 1587104672),
        (1978392860, 467303557), (462925222, 1185443039)],
    5: [(746820825, 1540119696), (2731322335, 887130889), (3367768200, 4027203707), (1022905216, 923734148),
        (1376031680, 2893118266), (4289454875, 431957109)],
    2**40 + 11: [(3798802539, 2358695529), (3109268969, 3882738414), (583574106, 1653024483),
                 (2975952804, 3574131316), (3311855389, 2617397717), (1598388412, 895280830)],
}


def test_image_keys_equal_the_frozen_word_by_word_keys_bit_for_bit():
    indices = [0, 1, 2**31 - 1, 2**31, 2**32 + 7, 2**62 + 3]
    for seed, expected in FROZEN_KEYS.items():
        keys = rng.image_keys(seed, torch.tensor(indices), stream=7)
        got = [(int(a) & 0xFFFFFFFF, int(b) & 0xFFFFFFFF) for a, b in keys.tolist()]
        assert got == expected


def test_negative_indices_raise_before_anything_is_simulated():
    sim = LensSimulator("model_i")
    with pytest.raises(ValueError):
        sim.simulate(0, [3, -1])
    with pytest.raises(ValueError):
        rng.image_keys(0, torch.tensor([-2]), 1)


def _mixed_means(dtype) -> torch.Tensor:
    """Means across every regime: 0 (clipped sky), tiny, around the step boundaries, 20 and above."""
    g = torch.Generator().manual_seed(0)
    means = torch.cat([torch.zeros(500), torch.rand(2000, generator=g) * 20, torch.tensor([1e-6, 19.999, 20.0]),
                       20 + torch.rand(500, generator=g) * 1000])  # fmt: skip
    return means.to(dtype).reshape(3, -1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_sync_free_poisson_sampler_gives_the_same_counts_as_the_cpu_path(dtype):
    mean = _mixed_means(dtype)
    keys = rng.image_keys(4, torch.arange(3), rng.STREAMS["poisson"])
    cpu = rng.poisson(mean, keys)
    e = torch.arange(mean.shape[1], dtype=torch.int32)[None]
    u = rng.words_to_uniform(rng.random_words(keys, e), dtype).reshape(-1)
    fixed = rng._poisson_fixed_steps(mean.reshape(-1), u).reshape(mean.shape)
    assert torch.equal(cpu, fixed)


def test_the_inversion_is_exact_for_the_most_extreme_uniforms():
    """u at the float32 ends gives the true quantile (49 at mean 20, past every compaction), not the step cap."""
    lam = torch.tensor([19.99, 19.99, 5.0, 0.5], dtype=torch.float64)
    u = torch.tensor([2.0**-25, 1 - 2.0**-25, 1 - 2.0**-25, 2.0**-25], dtype=torch.float64)
    counts = rng._invert_poisson_cdf(lam, u, compact=True)
    expected = [float(stats.poisson.ppf(float(v), float(m))) for m, v in zip(lam, u, strict=True)]
    assert counts.tolist() == expected and expected[1] == 49.0 and expected[3] == 0.0
    assert torch.equal(counts, rng._invert_poisson_cdf(lam, u, compact=False))


def test_poisson_counts_pooled_over_mixed_means_follow_the_exact_mixture():
    """Pooled over 0 < mean < 20 (every element stopping at a different step), the PIT histogram is flat."""
    n = 60_000
    mean = (torch.arange(n, dtype=torch.float64) % 400 + 0.5) / 20  # 0.025 .. 19.975
    x = rng.poisson(mean[None], rng.image_keys(9, torch.arange(1), 7))[0].numpy()
    m = mean.numpy()
    # randomised PIT: F(x - 1) + v pmf(x) is U(0, 1) exactly when x ~ Poisson(m)
    v = np.random.default_rng(0).random(n)
    pit = stats.poisson.cdf(x - 1, m) + v * stats.poisson.pmf(x, m)
    assert stats.kstest(pit, "uniform").pvalue > 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_sie_tends_smoothly_to_the_sis_as_its_ellipticity_vanishes(dtype):
    x = torch.linspace(-2, 2, 41, dtype=dtype)[None, :]
    y = torch.linspace(-1.9, 2.1, 41, dtype=dtype)[:, None]
    sis = torch.stack(SIE.deflection(x, y, 1.2, 0.0, 0.0))
    assert torch.isfinite(sis).all()
    eps = torch.finfo(dtype).eps
    for e in (1e-12, 1e-8, 1e-5, 1e-3):
        sie = torch.stack(SIE.deflection(x, y, 1.2, e, 0.0))
        # the deflection moves by O(e) (x theta_E); a few ulps of slack
        assert (sie - sis).abs().max() < 3 * e * 1.2 + 50 * eps * 1.2
    assert math.isfinite(float(SIE.deflection(torch.zeros((), dtype=dtype), torch.zeros((), dtype=dtype), 1.0)[0]))


def test_the_simulator_gives_the_same_counts_through_the_sync_free_sampler():
    """What a CUDA run or a compiled run computes (fixed steps everywhere) equals the CPU images."""
    import dataclasses

    from eqlens.simulation import instrument

    sim = LensSimulator(dataclasses.replace(get_config("model_i"), image_size=33, pixel_scale=0.15))
    idx = torch.arange(3)
    params = sim.sample(2, idx)
    flux = sim.render(params)
    expected = sim.simulate(2, idx).images
    normal_keys, poisson_keys = instrument.noise_keys(2, idx)
    t = params.exposure.reshape(-1, 1, 1).to(flux.dtype)
    mean = flux.clamp(min=0) * t
    z1, z2 = rng.normal_pair(normal_keys, flux.shape[1:], flux.dtype)
    rate = (mean + torch.sqrt(mean) * z1 + t * params.background_rms.reshape(-1, 1, 1) * z2).clamp(min=0)
    e = torch.arange(rate[0].numel(), dtype=torch.int32)[None]
    u = rng.words_to_uniform(rng.random_words(poisson_keys, e), flux.dtype).reshape(-1)
    assert torch.equal(rng._poisson_fixed_steps(rate.reshape(-1), u).reshape(rate.shape), expected)


def test_float32_uniforms_stay_inside_the_open_unit_interval():
    from eqlens.simulation import rng

    words = torch.tensor([-1, 0x7FFFFFFF, 0, -256], dtype=torch.int32)  # all-ones high bits included
    u = rng.words_to_uniform(words, torch.float32)
    assert bool(((u > 0) & (u < 1)).all())


def test_the_image_that_once_had_an_infinite_pixel_is_finite():
    from eqlens.data.simulated import split_seed
    from eqlens.simulation import LensSimulator

    images = LensSimulator("model_i").simulate(split_seed(1, "train"), [1339]).images
    assert bool(torch.isfinite(images).all())
