"""Lens profiles: deflection angles (arcsec) and convergence, with lenstronomy's parameter names.

Every profile is a stateless class with the same two methods,

    deflection(x, y, **params) -> (alpha_x, alpha_y)
    convergence(x, y, **params) -> kappa

where ``x, y`` are angles in arcsec and every parameter is a float or a tensor broadcastable
against them (e.g. ``x: [1, H, W]``, ``theta_E: [B, 1, 1]`` -> ``[B, H, W]``). Units: convergence is
in units of the critical density, so ``div alpha = 2 kappa``. The conventions, q and phi from
(e1, e2) included, are lenstronomy's, and the golden values of lenstronomy 1.14.2 are reproduced to
1e-9 or better in float64 (tests/simulation/test_profiles.py).

Rotations: every profile is built from the relative vector (x - center_x, y - center_y) and the
angle phi, so rotating all centres by an angle t, adding t to phi (2t to the shear angle) rotates the
deflection field by t. This is what makes a rotated scene give an exactly rotated image.
"""

from __future__ import annotations

import math

import torch


def _as_tensor(v):
    # Python floats become float64 0-d tensors: exact, and 0-d tensors never up-cast a float32 grid.
    return v if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64)


def ellipticity_to_phi_q(e1, e2):
    """lenstronomy: e = (1 - q) / (1 + q) (cos 2 phi, sin 2 phi) -> (phi, q)."""
    e1, e2 = _as_tensor(e1), _as_tensor(e2)
    phi = 0.5 * torch.atan2(e2, e1)
    c = torch.sqrt(e1 * e1 + e2 * e2).clamp(max=0.9999)
    return phi, (1 - c) / (1 + c)


def phi_q_to_ellipticity(phi, q):
    """Inverse of :func:`ellipticity_to_phi_q`."""
    phi, q = _as_tensor(phi), _as_tensor(q)
    c = (1 - q) / (1 + q)
    return c * torch.cos(2 * phi), c * torch.sin(2 * phi)


def _to_major_axis_frame(x, y, phi, center_x, center_y):
    dx, dy = x - center_x, y - center_y
    cos, sin = torch.cos(phi), torch.sin(phi)
    return cos * dx + sin * dy, -sin * dx + cos * dy, cos, sin


# Floor of the SIE's f = sqrt(1 - q^2): atan(f t) / f and atanh(f t) / f are then evaluated directly, to
# a few ulps for every f (f t stays a normal float; both are odd with f t as their leading term), and at
# f = 1e-15 they equal their q -> 1 limit t to within t^3 f^2 / 3 ~ 1e-30 t^3: the SIS needs no series.
_SIE_MIN_F = 1e-15


class SIE:
    """Singular isothermal ellipsoid (lenstronomy ``SIE``; SIS when e1 = e2 = 0).

    kappa = theta_E / (2 sqrt(q x'^2 + y'^2 / q)) in the frame rotated by phi. As in lenstronomy it
    is evaluated as a non-singular ellipsoid with a 1e-10" core (``s_scale``): that core also keeps
    the centre finite (deflection 0 there, no NaN). q -> 1 (SIS): f = sqrt(1 - q^2) is floored at
    1e-15, where atan(f t) / f = t to double precision (see ``_SIE_MIN_F``).
    """

    s_scale = 1e-10

    @staticmethod
    def _frame(x, y, theta_E, e1, e2, center_x, center_y):
        phi, q = ellipticity_to_phi_q(e1, e2)
        xr, yr, cos, sin = _to_major_axis_frame(x, y, phi, center_x, center_y)
        s = SIE.s_scale / torch.sqrt(q)
        return xr, yr, cos, sin, q, s

    @staticmethod
    def deflection(x, y, theta_E, e1=0.0, e2=0.0, center_x=0.0, center_y=0.0):
        xr, yr, cos, sin, q, s = SIE._frame(x, y, theta_E, e1, e2, center_x, center_y)
        f = torch.sqrt((1 - q * q).clamp(min=0)).clamp(min=_SIE_MIN_F)
        psi = torch.sqrt(q * q * (s * s + xr * xr) + yr * yr)
        b_over_f = theta_E * torch.sqrt(q) / f
        # atan(f xr / (psi + s)) as atan2 (psi + s > 0): one division fewer, and vectorised on CPU
        ax = torch.atan2(f * xr, psi + s)
        ay = torch.atanh(f * yr / (psi + q * q * s))
        # back to the sky frame with b / f folded into the rotation: two passes per component
        cos_b, sin_b = b_over_f * cos, b_over_f * sin
        return torch.mul(ax, cos_b).addcmul_(ay, sin_b, value=-1.0), torch.mul(ax, sin_b).addcmul_(ay, cos_b)

    @staticmethod
    def convergence(x, y, theta_E, e1=0.0, e2=0.0, center_x=0.0, center_y=0.0):
        xr, yr, _, _, q, s = SIE._frame(x, y, theta_E, e1, e2, center_x, center_y)
        return theta_E * torch.sqrt(q) / (2 * torch.sqrt(q * q * (s * s + xr * xr) + yr * yr))


class Shear:
    """External shear about the origin (lenstronomy ``SHEAR`` with ra_0 = dec_0 = 0); kappa = 0."""

    @staticmethod
    def deflection(x, y, gamma1, gamma2):
        return gamma1 * x + gamma2 * y, gamma2 * x - gamma1 * y

    @staticmethod
    def convergence(x, y, gamma1, gamma2):
        return torch.zeros_like(x * gamma1)


def _inverse_square_distance(dx, dy):
    """1 / r^2, finite (and multiplying dx = dy = 0 to 0) when a pixel sits exactly on the centre."""
    r2 = dx * dx + dy * dy
    return 1.0 / (r2 + torch.finfo(r2.dtype).tiny)


class PointMass:
    """Point mass (lenstronomy ``POINT_MASS``): alpha = theta_E^2 (x - x0, y - y0) / r^2; kappa = 0 off centre."""

    @staticmethod
    def deflection(x, y, theta_E, center_x=0.0, center_y=0.0):
        dx, dy = x - center_x, y - center_y
        a = theta_E * theta_E * _inverse_square_distance(dx, dy)
        return a * dx, a * dy

    @staticmethod
    def convergence(x, y, theta_E, center_x=0.0, center_y=0.0):
        return torch.zeros_like(x - center_x) * theta_E


class UniformLine:
    """A straight segment of uniform surface mass: the limit of many equal point masses on a line.

    ``theta_E`` is the Einstein radius of the whole mass (theta_E^2 adds over the points), the segment
    runs from ``center - half_length * u`` to ``center + half_length * u``, u = (cos angle, sin angle).
    With p, n the coordinates along u and across it and density theta_E^2 / (2 L) per arcsec,

        alpha_u = theta_E^2 / (4 L) ln(((p + L)^2 + n^2) / ((p - L)^2 + n^2))
        alpha_n = theta_E^2 / (2 L) atan2(2 L n, p^2 + n^2 - L^2)   (the angle the segment subtends).

    Off the segment it equals the point-mass sum up to terms of order (spacing / distance)^2; on the
    segment itself alpha_n jumps by a sign (a line of mass) and takes the mean of its two sides, 0, so
    rotating the scene rotates the field there too; the tiny offsets keep alpha_u finite at the ends.
    L -> 0 tends to a point mass.
    """

    @staticmethod
    def deflection(x, y, theta_E, half_length, angle, center_x=0.0, center_y=0.0):
        dx, dy = x - center_x, y - center_y
        ux, uy = torch.cos(angle), torch.sin(angle)
        p = ux * dx + uy * dy
        n = -uy * dx + ux * dy
        tiny = torch.finfo(p.dtype).tiny
        L = half_length
        scale = theta_E * theta_E / (2 * L)
        a_along = 0.5 * scale * torch.log(((p + L) ** 2 + n * n + tiny) / ((p - L) ** 2 + n * n + tiny))
        # sign(n) atan2(2 L |n|, .) is atan2(2 L n, .) off the line, and on the segment (n = +-0) gives the mean
        # of the one-sided limits +-pi, i.e. 0, whatever the rounding left as the sign of the zero: a quarter
        # turn of the scene can flip that sign, and the centre ray of an odd grid lies on every vortex line.
        a_across = scale * torch.sign(n) * torch.atan2(2 * L * n.abs(), p * p + n * n - L * L)
        return ux * a_along - uy * a_across, uy * a_along + ux * a_across

    @staticmethod
    def convergence(x, y, theta_E, half_length, angle, center_x=0.0, center_y=0.0):
        return torch.zeros_like(x - center_x) * theta_E


class TNFW:
    """Truncated NFW (lenstronomy ``TNFW``, Baltz, Marshall & Oguri 2009) in the alpha_Rs convention.

    ``alpha_Rs`` is the deflection at ``Rs`` of the untruncated NFW, ``r_trunc`` the truncation radius.
    With X = r / Rs and tau = r_trunc / Rs, alpha(r) = 4 rho0 Rs g(X) / X (radial), rho0 = alpha_Rs /
    (4 Rs^2 (1 + ln 1/2)). Radii below 1e-5" are raised to 1e-5" as lenstronomy does (no NaN at the centre).
    """

    @staticmethod
    def _nfw_F(X):
        # F(X) = atanh(sqrt(1 - X^2)) / sqrt(1 - X^2) (X < 1), atan(sqrt(X^2 - 1)) / sqrt(X^2 - 1) (X > 1), 1 at X = 1.
        d = X * X - 1
        root = torch.sqrt(d.abs().clamp(min=1e-30))
        near = d.abs() < 1e-6
        inner = torch.log((1 + root) / X) / root  # atanh(root) = ln((1 + root) / X): no 1 - root cancellation
        outer = torch.atan(root) / root
        series = 1 - d / 3 + d * d / 5  # both branches' expansion about X = 1
        return torch.where(near, series, torch.where(d < 0, inner, outer))

    @staticmethod
    def deflection(x, y, Rs, alpha_Rs, r_trunc, center_x=0.0, center_y=0.0):
        dx, dy = x - center_x, y - center_y
        r = torch.sqrt(dx * dx + dy * dy).clamp(min=1e-5)
        X = r / Rs
        tau = _as_tensor(r_trunc) / Rs
        t2 = tau * tau
        rho0 = alpha_Rs / (4 * Rs * Rs * (1 + math.log(0.5)))
        log_term = torch.log(X / (tau + torch.sqrt(t2 + X * X)))
        g = (
            t2
            / (t2 + 1) ** 2
            * (
                (t2 + 1 + 2 * (X * X - 1)) * TNFW._nfw_F(X)
                + tau * math.pi
                + (t2 - 1) * torch.log(tau)
                + torch.sqrt(t2 + X * X) * (-math.pi + log_term * (t2 - 1) / tau)
            )
        )
        a = 4 * rho0 * Rs * g / (X * X)
        return a * dx, a * dy

    @staticmethod
    def convergence(x, y, Rs, alpha_Rs, r_trunc, center_x=0.0, center_y=0.0):
        dx, dy = x - center_x, y - center_y
        X = torch.sqrt(dx * dx + dy * dy).clamp(min=1e-5) / Rs
        tau = _as_tensor(r_trunc) / Rs
        t2 = tau * tau
        rho0 = alpha_Rs / (4 * Rs * Rs * (1 + math.log(0.5)))
        F = TNFW._nfw_F(X)
        d = X * X - 1
        # (1 - F) / (X^2 - 1) -> 1/3 at X = 1
        ratio = torch.where(d.abs() < 1e-6, 1 / 3 - d / 5, (1 - F) / torch.where(d.abs() < 1e-6, torch.ones_like(d), d))
        root = torch.sqrt(t2 + X * X)
        log_term = torch.log(X / (tau + root))
        bracket = (t2 + 1) * ratio + 2 * F - math.pi / root + (t2 - 1) / (tau * root) * log_term
        return 2 * rho0 * Rs * t2 / (t2 + 1) ** 2 * bracket
