"""Source light: the elliptical Sersic profile with lenstronomy's conventions.

    I(x, y) = amp * exp(-b_n ((R / R_sersic)^(1/n) - 1)),  R = sqrt(q x'^2 + y'^2 / q),
    b_n = 1.9992 n - 0.3271,

x', y' the offsets in the frame rotated by phi (from e1, e2 as for the lens). ``amp`` is the surface
brightness at R = R_sersic (counts/s per arcsec^2); an image pixel holds surface brightness times
pixel area, as lenstronomy's ``ImageModel`` does. R is floored at 1e-5" (lenstronomy's smoothing).
"""

from __future__ import annotations

import torch

from .profiles import _to_major_axis_frame, ellipticity_to_phi_q


class SersicEllipse:
    """Elliptical Sersic surface brightness; parameters broadcast against ``x, y`` like the lens profiles."""

    @staticmethod
    def b_n(n_sersic):
        return 1.9992 * n_sersic - 0.3271

    @staticmethod
    def surface_brightness(x, y, amp, R_sersic, n_sersic, e1=0.0, e2=0.0, center_x=0.0, center_y=0.0):
        phi, q = ellipticity_to_phi_q(e1, e2)
        xr, yr, _, _ = _to_major_axis_frame(x, y, phi, center_x, center_y)
        R = torch.sqrt(q * xr * xr + yr * yr / q).clamp(min=1e-5)
        return amp * torch.exp(-SersicEllipse.b_n(n_sersic) * ((R / R_sersic) ** (1.0 / n_sersic) - 1.0))
