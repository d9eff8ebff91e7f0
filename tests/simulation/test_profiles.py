"""Lens and light profiles against lenstronomy's golden values and against lensing identities."""

import json
import math
from pathlib import Path

import pytest
import torch

from eqlens.simulation.light import SersicEllipse
from eqlens.simulation.profiles import SIE, TNFW, PointMass, Shear, UniformLine, phi_q_to_ellipticity

# Measured with lenstronomy 1.14.2 (the file names the version) and vendored here: the test data of a
# clean clone, never skipped.
GOLDEN = json.loads((Path(__file__).parent / "golden_lenstronomy.json").read_text())


def _evaluate(case, x, y):
    p, model = case["params"], case["model"]
    if model in ("SIE", "SERSIC_ELLIPSE"):
        e1, e2 = phi_q_to_ellipticity(torch.tensor(p["phi"], dtype=x.dtype), torch.tensor(p["q"], dtype=x.dtype))
    if model == "SIE":
        return SIE.deflection(x, y, p["theta_E"], e1, e2, p["x0"], p["y0"])
    if model == "SHEAR":
        return Shear.deflection(x, y, p["g1"], p["g2"])
    if model == "POINT_MASS":
        return PointMass.deflection(x, y, p["b"], p["x0"], p["y0"])
    if model == "TNFW":
        return TNFW.deflection(x, y, p["Rs"], p["alpha_Rs"], p["r_trunc"], p["x0"], p["y0"])
    return (SersicEllipse.surface_brightness(x, y, p["Ie"], p["Re"], p["n"], e1, e2, p["x0"], p["y0"]),)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-6)])
@pytest.mark.parametrize("case_index", range(len(GOLDEN["cases"])))
def test_profiles_reproduce_lenstronomy_golden_values(case_index, dtype, tol):
    case = GOLDEN["cases"][case_index]
    pts = torch.tensor(GOLDEN["points_xy"], dtype=dtype)
    got = _evaluate(case, pts[:, 0], pts[:, 1])
    want = [case[k] for k in ("alpha_x", "alpha_y", "I") if k in case]
    for g, w in zip(got, want, strict=True):
        w = torch.tensor(w, dtype=torch.float64)
        assert g.dtype == dtype
        assert torch.allclose(g.double(), w, rtol=tol, atol=tol * float(w.abs().max()))


def test_sis_deflection_has_length_theta_E_everywhere():
    x, y = torch.randn(2, 500, dtype=torch.float64) * 2
    ax, ay = SIE.deflection(x, y, 1.3)
    assert torch.allclose(torch.hypot(ax, ay), torch.full_like(x, 1.3), rtol=1e-12)


def _div_curl(profile, params, x, y):
    x, y = x.clone().requires_grad_(), y.clone().requires_grad_()
    ax, ay = profile.deflection(x, y, **params)
    dax = torch.autograd.grad(ax.sum(), (x, y), retain_graph=True)
    day = torch.autograd.grad(ay.sum(), (x, y))
    return dax[0] + day[1], day[0] - dax[1]


@pytest.mark.parametrize(
    "profile,params",
    [
        (SIE, dict(theta_E=1.1, e1=0.2, e2=-0.1, center_x=0.1, center_y=-0.2)),
        (SIE, dict(theta_E=1.1, e1=1e-9, e2=0.0)),  # the q -> 1 series branch
        (TNFW, dict(Rs=0.3, alpha_Rs=0.05, r_trunc=1.2, center_x=0.2, center_y=0.1)),
        (Shear, dict(gamma1=0.05, gamma2=-0.02)),
    ],
)
def test_half_the_divergence_of_alpha_is_kappa_and_its_curl_is_zero(profile, params):
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.rand(2, 400, generator=gen, dtype=torch.float64) - 0.5) * 5
    div, curl = _div_curl(profile, params, x, y)
    kappa = profile.convergence(x, y, **params)
    assert torch.allclose(div / 2, kappa, rtol=1e-8, atol=1e-10)
    assert curl.abs().max() < 1e-9


def test_tnfw_divergence_matches_kappa_across_the_scale_radius():
    x = torch.tensor([0.3 - 1e-8, 0.3, 0.3 + 1e-8, 0.29, 0.31], dtype=torch.float64)
    y = torch.zeros_like(x)
    params = dict(Rs=0.3, alpha_Rs=0.05, r_trunc=1.2)
    div, _ = _div_curl(TNFW, params, x, y)
    assert torch.allclose(div / 2, TNFW.convergence(x, y, **params), rtol=1e-6)


def test_a_uniform_line_equals_its_point_masses_away_from_the_line():
    n, half, angle, theta = 400, 0.8, 0.6, 0.3
    s = torch.linspace(-half, half, n, dtype=torch.float64)
    px, py = s * math.cos(angle), s * math.sin(angle)
    gen = torch.Generator().manual_seed(1)
    x, y = (torch.rand(2, 200, generator=gen, dtype=torch.float64) - 0.5) * 6
    far = torch.stack([torch.hypot(x - a, y - b) for a, b in zip(px, py, strict=True)]).amin(0) > 0.3
    ax = sum(PointMass.deflection(x, y, theta / math.sqrt(n), a, b)[0] for a, b in zip(px, py, strict=True))
    ay = sum(PointMass.deflection(x, y, theta / math.sqrt(n), a, b)[1] for a, b in zip(px, py, strict=True))
    lx, ly = UniformLine.deflection(x, y, theta, half, torch.tensor(angle, dtype=torch.float64))
    scale = torch.hypot(ax, ay)[far]
    assert ((lx - ax)[far].abs() / scale).max() < 2e-3 and ((ly - ay)[far].abs() / scale).max() < 2e-3


def test_a_very_short_line_is_a_point_mass():
    x, y = torch.tensor([0.7, -1.2, 0.4], dtype=torch.float64), torch.tensor([0.5, 0.3, -0.9], dtype=torch.float64)
    lx, ly = UniformLine.deflection(x, y, 0.2, 1e-6, torch.tensor(0.4, dtype=torch.float64))
    px, py = PointMass.deflection(x, y, 0.2)
    assert torch.allclose(lx, px, rtol=1e-9) and torch.allclose(ly, py, rtol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_profile_gives_nan_exactly_at_its_centre(dtype):
    z = torch.zeros(1, dtype=dtype)
    angle = torch.tensor(0.3, dtype=dtype)
    outputs = [
        *SIE.deflection(z, z, 1.2, 0.1, 0.0),
        *SIE.deflection(z, z, 1.2),
        *PointMass.deflection(z, z, 0.1),
        *TNFW.deflection(z, z, 0.1, 0.01, 0.5),
        *UniformLine.deflection(z, z, 0.1, 0.5, angle),
        *UniformLine.deflection(z + 0.5 * torch.cos(angle), z + 0.5 * torch.sin(angle), 0.1, 0.5, angle),  # an end
        SersicEllipse.surface_brightness(z, z, 1.0, 0.2, 4.0, 0.1, 0.0),
    ]
    assert all(torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_the_simulators_point_mass_sum_is_the_sum_of_golden_tested_point_masses(dtype, tol):
    from eqlens.simulation.simulator import point_mass_sum

    g = torch.Generator().manual_seed(3)
    theta_e = torch.rand(2, 5, generator=g, dtype=torch.float64).to(dtype) * 0.1
    cx = (torch.rand(2, 5, generator=g, dtype=torch.float64).to(dtype) - 0.5) * 3
    cy = (torch.rand(2, 5, generator=g, dtype=torch.float64).to(dtype) - 0.5) * 3
    grid = (torch.arange(7, dtype=dtype) - 3.3) * 0.41  # never on a mass
    x, y = grid[None, None, :], grid[None, :, None]
    ax, ay = point_mass_sum(x, y, theta_e, cx, cy)
    want_x = torch.zeros(2, 7, 7, dtype=dtype)
    want_y = torch.zeros_like(want_x)
    for b in range(2):
        for j in range(5):
            dx, dy = PointMass.deflection(x[0], y[0], theta_e[b, j], cx[b, j], cy[b, j])
            want_x[b] += dx
            want_y[b] += dy
    scale = want_x.abs().max() + want_y.abs().max()
    assert (ax - want_x).abs().max() <= tol * scale and (ay - want_y).abs().max() <= tol * scale
