"""The counter-based RNG: exact hash, batch independence, and the statistics of its draws."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from eqlens.simulation import rng


def _reference_mix(x: int, lane) -> int:
    s1, m1, s2, m2, s3 = lane
    x ^= x >> s1
    x = (x * m1) & 0xFFFFFFFF
    x ^= x >> s2
    x = (x * m2) & 0xFFFFFFFF
    return x ^ (x >> s3)


def test_the_int32_hash_equals_the_pure_python_reference_bit_for_bit():
    keys = rng.image_keys(123456789012, torch.tensor([0, 1, 2**33 + 5]), stream=3)
    elements = torch.arange(1031, dtype=torch.int32)[None]  # odd length: vector and scalar tails
    words = rng.random_words(keys, elements)
    for b in range(keys.shape[0]):
        ka, kb = (int(v) & 0xFFFFFFFF for v in keys[b])
        expected = [_reference_mix(_reference_mix(e ^ ka, rng._LANE_A) ^ kb, rng._LANE_B) for e in range(1031)]
        assert (words[b].numpy().astype(np.int64) & 0xFFFFFFFF).tolist() == expected


def test_an_image_draws_the_same_numbers_whatever_its_batch():
    alone = rng.uniform(rng.image_keys(7, torch.tensor([42]), 1), 50)
    in_batch = rng.uniform(rng.image_keys(7, torch.tensor([3, 42, 9]), 1), 50)
    assert torch.equal(alone[0], in_batch[1])


def test_seed_index_and_stream_each_change_the_numbers():
    base = rng.uniform(rng.image_keys(7, torch.tensor([42]), 1), 20)
    for other in (rng.image_keys(8, torch.tensor([42]), 1), rng.image_keys(7, torch.tensor([43]), 1),
                  rng.image_keys(7, torch.tensor([42]), 2)):  # fmt: skip
        assert not torch.equal(base, rng.uniform(other, 20))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniforms_lie_strictly_inside_0_1_and_have_uniform_moments(dtype):
    u = rng.uniform(rng.image_keys(0, torch.arange(4), 5), 50_000, dtype)
    assert u.dtype == dtype and float(u.min()) > 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.003 and abs(float(u.var()) - 1 / 12) < 0.002
    assert stats.kstest(u.double().flatten().numpy(), "uniform").pvalue > 1e-4


def test_normal_pairs_have_mean_0_variance_1_and_are_uncorrelated():
    z1, z2 = rng.normal_pair(rng.image_keys(0, torch.arange(4), 6), (100, 100), torch.float64)
    for z in (z1, z2):
        assert abs(float(z.mean())) < 0.025 and abs(float(z.var()) - 1) < 0.035  # 5 sigma for 40k draws
    assert abs(float((z1 * z2).mean())) < 0.025


@pytest.mark.parametrize("mean", [0.05, 3.0, 12.0, 19.5])
def test_poisson_inversion_matches_the_exact_distribution_for_small_means(mean):
    n = 40_000
    x = rng.poisson(torch.full((2, n // 2), mean, dtype=torch.float64), rng.image_keys(1, torch.arange(2), 7))
    counts = x.flatten().numpy()
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    k = np.arange(int(mean + 8 * math.sqrt(mean) + 10))
    empirical = np.array([(counts <= kk).mean() for kk in k])
    # Kolmogorov bound for n samples at ~1e-4 false-alarm rate
    assert np.abs(empirical - stats.poisson.cdf(k, mean)).max() < 2.0 / math.sqrt(n)


@pytest.mark.parametrize("mean", [20.0, 60.0, 900.0])
def test_poisson_normal_approximation_keeps_mean_variance_and_cdf_for_large_means(mean):
    n = 40_000
    x = rng.poisson(torch.full((1, n), mean, dtype=torch.float64), rng.image_keys(2, torch.arange(1), 7)).flatten()
    z = (x - mean) / math.sqrt(mean)
    assert abs(float(z.mean())) < 0.025 and abs(float(z.var()) - 1) < 0.035
    k = np.arange(int(mean - 5 * math.sqrt(mean)), int(mean + 5 * math.sqrt(mean)))
    empirical = np.array([(x.numpy() <= kk).mean() for kk in k])
    assert np.abs(empirical - stats.poisson.cdf(k, mean)).max() < 7e-4 + 2.0 / math.sqrt(n)


def test_poisson_of_zero_mean_is_zero():
    x = rng.poisson(torch.zeros(3, 10), rng.image_keys(0, torch.arange(3), 7))
    assert torch.equal(x, torch.zeros(3, 10))
