"""The varied lens population (issue 23): every drawn parameter within its stated prior, recorded as truth,
Model I's draws untouched, and physical bounds refused with the field named."""

import dataclasses
import math

import pytest
import torch

from eqlens.simulation import LensSimulator
from eqlens.simulation.configs import SimulationConfigError, get_config
from eqlens.simulation.cosmology import physical_mass_factor
from eqlens.simulation.sampling import poisson_count, sample_parameters, unit_einstein_radius

N = 3000


@pytest.fixture(scope="module")
def varied():
    config = get_config("model_i_varied")
    return config, sample_parameters(config, seed=7, indices=range(N))


def test_each_parameter_lies_in_its_prior_and_fills_it(varied):
    config, p = varied
    q = (1 - torch.hypot(p.lens_e1, p.lens_e2)) / (1 + torch.hypot(p.lens_e1, p.lens_e2))
    gamma = torch.hypot(p.gamma1, p.gamma2)
    source_e = torch.hypot(p.source_e1, p.source_e2)
    log_t = torch.log10(p.exposure)
    for values, (lo, hi) in ((p.theta_E, (1.0, 1.6)), (q, (0.7, 1.0)), (gamma, (0.0, 0.1)),
                             (p.source_R_sersic, (0.15, 0.4)), (p.source_n_sersic, (0.7, 2.5)),
                             (source_e, (0.0, 0.2)), (log_t, (2.75, 3.75)), (p.psf_fwhm, (0.07, 0.11))):
        assert float(values.min()) >= lo - 1e-9 and float(values.max()) <= hi + 1e-9
        # uniform: the sample spans the prior (each end within 2 % of its width)
        assert float(values.min()) < lo + 0.02 * (hi - lo) and float(values.max()) > hi - 0.02 * (hi - lo)
    # q uniform (not |e| uniform): the median sits at the middle of (0.7, 1)
    assert abs(float(q.median()) - 0.85) < 0.01
    # position angles uniform over the half turn: the spin-2 components average to zero
    for e1, e2 in ((p.lens_e1, p.lens_e2), (p.gamma1, p.gamma2), (p.source_e1, p.source_e2)):
        assert abs(float(torch.atan2(e2, e1).cos().mean())) < 0.06


def test_poisson_subhalo_counts_have_mean_and_variance_25(varied):
    config, p = varied
    cdm = p.labels == config.class_names.index("cdm")
    counts = p.n_subhalos[cdm].double()
    assert abs(float(counts.mean()) - 25) < 0.5 and abs(float(counts.var()) - 25) < 4
    assert int(p.n_subhalos[~cdm].max()) == 0
    # slots beyond each lens's count hold nothing; those inside it hold mass on Model I's rule
    slot = torch.arange(p.subhalo_mass.shape[1])[None, :]
    inside = slot < p.n_subhalos[:, None]
    assert bool((p.subhalo_mass[~inside] == 0).all()) and bool((p.subhalo_theta_E[~inside] == 0).all())
    assert bool((p.subhalo_mass[inside] > 0).all())
    torch.testing.assert_close(p.subhalo_theta_E, unit_einstein_radius(config) * p.subhalo_mass.sqrt())


def test_poisson_inverse_cdf_matches_the_pmf():
    u = torch.linspace(0.0005, 0.9995, 2000, dtype=torch.float64)
    k = poisson_count(u, 3.0, 50)
    freq = torch.bincount(k, minlength=4)[:4].double() / len(u)
    pmf = torch.tensor([math.exp(-3) * 3**n / math.factorial(n) for n in range(4)], dtype=torch.float64)
    torch.testing.assert_close(freq, pmf, atol=2e-3, rtol=0)
    assert int(poisson_count(torch.tensor([1 - 1e-12], dtype=torch.float64), 25.0, 30)) == 30  # the cap


def test_model_i_draws_are_unchanged_by_the_new_slots():
    # Model I fixes the shapes and the count: the same scene values as drawing with the variation switched off
    model_i = get_config("model_i")
    p = sample_parameters(model_i, seed=3, indices=range(64))
    assert bool((p.n_subhalos[p.labels == 1] == 25).all())
    assert bool((p.source_e1 == model_i.source_e1).all()) and bool((p.lens_e1 == model_i.lens_e1).all())
    # the varied config shares the source centre and the subhalo masses of the slots both draw
    v = sample_parameters(get_config("model_i_varied"), seed=3, indices=range(64))
    torch.testing.assert_close(v.source_center_x, p.source_center_x)


def test_truth_records_every_drawn_parameter():
    sim = LensSimulator("model_i_varied")
    batch = sim.simulate(0, [0, 1, 2])
    truth = batch.truth.for_image(1)
    for key in ("theta_E", "lens_axis_ratio", "lens_angle_deg", "shear_modulus", "shear_angle_deg",
                "source_R_sersic", "source_n_sersic", "source_ellipticity", "source_angle_deg", "psf_fwhm",
                "exposure", "physical_mass_factor"):
        assert isinstance(truth[key], float), key
    assert len(truth["subhalo_masses"]) == int(batch.truth.n_subhalos[1])
    assert 0.7 <= truth["lens_axis_ratio"] <= 1.0 and 0.07 <= truth["psf_fwhm"] <= 0.11


def test_physical_mass_factor_of_model_i_and_of_the_angular_convention():
    assert physical_mass_factor(0.5, 1.0) == pytest.approx(0.5927, abs=1e-4)
    assert physical_mass_factor(0.5, 1.0, convention="angular") == 1.0
    # the factor is the squared ratio of the two conventions' Einstein radii: 1.2815" against 1.66"
    assert physical_mass_factor(0.5, 1.0) == pytest.approx((1.2815 / 1.6645) ** 2, rel=2e-3)


@pytest.mark.parametrize(("field", "value", "named"), [
    ("lens_axis_ratio_range", (0.7, 1.2), "axis ratio"),
    ("theta_E_range", (-1.0, 1.6), "Einstein radius"),
    ("psf_fwhm_range", (-0.1, 0.1), "PSF FWHM"),
    ("psf_fwhm", -0.1, "PSF FWHM"),
    ("log10_exposure_range", (3.75, 2.75), "lo <= hi"),
    ("shear_range", (0.0, math.nan), "shear"),
    ("subhalo_count", "binomial", "subhalo_count"),
    ("max_subhalos", 10**9, "max_subhalos"),
])
def test_a_range_outside_physics_is_refused_naming_the_field(field, value, named):
    with pytest.raises(SimulationConfigError, match=named) as info:
        dataclasses.replace(get_config("model_i_varied"), **{field: value})
    assert field in str(info.value)


def test_the_tnfw_twin_draws_the_same_scenes():
    varied, tnfw = get_config("model_i_varied"), get_config("model_i_varied_tnfw")
    assert varied.same_scenes(tnfw) and tnfw.subhalo_profile == "tnfw"


def test_the_scene_rows_give_every_varied_parameter_and_each_mass_in_both_units():
    from eqlens.simulation.scene import PHYSICAL_MASS_UNIT, scene_parameters, subhalo_rows

    truth = LensSimulator("model_i_varied").simulate(0, [1]).truth.for_image(0)  # item 1: cdm
    rows = {r["parameter"]: r for r in scene_parameters(truth)}
    for name in ("lens axis ratio q", "external shear |gamma|", "source Sersic radius R_sersic",
                 "source Sersic index n", "source ellipticity |e|", "PSF FWHM", "exposure"):
        assert isinstance(rows[name]["value"], float), name
    factor = truth["physical_mass_factor"]
    inside = rows["main-lens mass inside theta_E"]["value"]
    assert inside == pytest.approx(1e12 * (truth["theta_E"] / 1.2815) ** 2, rel=2e-3)
    assert rows["main-lens mass inside theta_E (physical)"]["value"] == pytest.approx(inside * factor)
    assert rows["subhalo mass, total (physical)"]["unit"] == PHYSICAL_MASS_UNIT
    heaviest = subhalo_rows(truth)[0]
    assert heaviest["mass_physical_msun"] == pytest.approx(heaviest["mass_msun"] * factor)
    assert heaviest["theta_E_arcsec"] == pytest.approx(1.2815 * math.sqrt(heaviest["mass_msun"] / 1e12), rel=2e-3)


def test_the_error_anatomy_bins_the_varied_parameters_and_gives_mass_edges_in_physical_msun():
    from eqlens.analysis.error_anatomy import error_anatomy

    sim = LensSimulator("model_i_varied")
    truths = [sim.simulate(0, list(range(60))).truth.for_image(i) for i in range(60)]
    labels = [t["label"] for t in truths]
    wrong = [(label + (i % 2)) % 3 for i, label in enumerate(labels)]
    bins = {(b.class_name, b.feature.name): b for b in error_anatomy(truths, labels, wrong, ("axion", "cdm", "no_sub"))}
    for feature in ("theta_E", "lens_axis_ratio", "shear_modulus", "source_R_sersic", "psf_fwhm", "subhalo_count"):
        assert ("cdm", feature) in bins, feature
    mass = bins[("cdm", "subhalo_mass_total")]
    assert mass.physical_edges == pytest.approx(mass.edges * 0.5927, rel=1e-3)
    assert bins[("cdm", "theta_E")].physical_edges is None
