"""Source light: the elliptical Sersic profile with lenstronomy's conventions.

    I(x, y) = amp * exp(-b_n ((R / R_sersic)^(1/n) - 1)),  R = sqrt(q x'^2 + y'^2 / q),
    b_n = 1.9992 n - 0.3271,

x', y' the offsets in the frame rotated by phi (from e1, e2 as for the lens). ``amp`` is the surface
brightness at R = R_sersic (counts/s per arcsec^2); an image pixel holds surface brightness times
pixel area, as lenstronomy's ``ImageModel`` does. R is floored at 1e-5" (lenstronomy's smoothing).
"""

from __future__ import annotations

import torch

from .profiles import _as_tensor, _to_major_axis_frame, ellipticity_to_phi_q


class SersicEllipse:
    """Elliptical Sersic surface brightness; parameters broadcast against ``x, y`` like the lens profiles."""

    @staticmethod
    def b_n(n_sersic):
        return 1.9992 * n_sersic - 0.3271

    @staticmethod
    def surface_brightness(x, y, amp, R_sersic, n_sersic, e1=0.0, e2=0.0, center_x=0.0, center_y=0.0):
        phi, q = ellipticity_to_phi_q(e1, e2)
        xr, yr, _, _ = _to_major_axis_frame(x, y, phi, center_x, center_y)
        # (R / R_sersic)^(1/n) = exp((ln R^2 / 2 - ln R_sersic) / n): no sqrt and no pow (a slow op on CPU)
        R2 = torch.mul(xr, xr).mul_(q).addcmul_(yr, yr / q).clamp_(min=1e-10)
        inv_n = 1.0 / _as_tensor(n_sersic)
        power = R2.log_().mul_(0.5 * inv_n).sub_(torch.log(_as_tensor(R_sersic)) * inv_n).exp_()
        b = SersicEllipse.b_n(n_sersic)
        return power.mul_(-b).add_(b).exp_().mul_(amp)
