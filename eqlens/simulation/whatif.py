"""What if the sky were different? One drawn scene with some of its physics changed, rendered with its own noise.

    params = sim.sample(seed, [0], labels=[1])                      # the drawn scene, [B=1]
    edited = edit_scene(params, theta_E=1.30, subhalo_mass_scale=3)  # a new LensParameters; the rest untouched
    batch = render_scene(sim, edited, seed, [0])                     # the same noise keys as sim.simulate(seed, [0])

The edits (:data:`EDITS`) are the scene's own parameters, with the literature's names: the main lens's
Einstein radius ``theta_E``, the source's Sersic radius ``source_R_sersic`` and centre ``source_x, source_y``,
the external shear's modulus and angle, the exposure, one factor on every subhalo's mass, and the axion mass
``log10_axion_mass`` (which sets the vortex's length, ``half_length ~ 1 / m``). Each edit sets a value for every
scene of the batch; a value outside its :class:`Edit` range raises :class:`SceneEditError`.

Rendering keeps the noise realisation of ``(seed, index)``: the uniforms behind the Gaussian and Poisson noise
are the same counter-based draws (:func:`.instrument.noise_keys`), so as an edit moves only the physics (and,
through the exposure, the noise's scale) changes. With no edit :func:`render_scene` is ``sim.simulate``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import EqlensError
from .sampling import LensParameters


class SceneEditError(EqlensError, ValueError):
    """An edit the scene cannot take: an unknown name, a value outside its range, or a vortex edit on a
    scene without a vortex (subhalos likewise)."""


@dataclass(frozen=True)
class Edit:
    """One editable quantity: ``label`` and ``unit`` for a reader, the allowed ``[lo, hi]``, and which
    scenes carry it (``"all"``, ``"subhalos"`` or ``"vortex"``)."""

    label: str
    unit: str
    lo: float
    hi: float
    needs: str = "all"


EDITS: dict[str, Edit] = {
    "theta_E": Edit("Einstein radius theta_E of the main lens", "arcsec", 0.3, 3.0),
    "source_R_sersic": Edit("source size R_sersic", "arcsec", 0.02, 1.5),
    "source_x": Edit("source centre x", "arcsec", -2.0, 2.0),
    "source_y": Edit("source centre y", "arcsec", -2.0, 2.0),
    "shear_modulus": Edit("external shear |gamma|", "", 0.0, 0.5),
    "shear_angle_deg": Edit("external shear angle", "deg", 0.0, 180.0),
    "exposure": Edit("exposure", "s", 10.0, 1e6),
    "subhalo_mass_scale": Edit("every subhalo's mass times", "", 0.0, 100.0, "subhalos"),
    "log10_axion_mass": Edit("axion mass log10(m_a / eV) (sets the vortex length)", "", -26.0, -20.0, "vortex"),
}


def has_subhalos(params: LensParameters) -> torch.Tensor:
    """``[B]`` bool: the scene holds at least one subhalo."""
    return params.n_subhalos > 0


def has_vortex(params: LensParameters) -> torch.Tensor:
    """``[B]`` bool: the scene holds a vortex (an axion lens)."""
    return ~torch.isnan(params.log10_axion_mass)


def applicable_edits(params: LensParameters, row: int = 0) -> list[str]:
    """The names of :data:`EDITS` scene ``row`` can take (no subhalo scale without subhalos, no axion mass
    without a vortex)."""
    present = {"all": True, "subhalos": bool(has_subhalos(params)[row]), "vortex": bool(has_vortex(params)[row])}
    return [name for name, edit in EDITS.items() if present[edit.needs]]


def scene_values(params: LensParameters, row: int = 0) -> dict[str, float]:
    """The current value of every applicable edit of scene ``row`` (the subhalo scale is 1: the drawn masses)."""
    g1, g2 = float(params.gamma1[row]), float(params.gamma2[row])
    values = {
        "theta_E": float(params.theta_E[row]),
        "source_R_sersic": float(params.source_R_sersic[row]),
        "source_x": float(params.source_center_x[row]),
        "source_y": float(params.source_center_y[row]),
        "shear_modulus": math.hypot(g1, g2),
        "shear_angle_deg": math.degrees(0.5 * math.atan2(g2, g1)) % 180.0,
        "exposure": float(params.exposure[row]),
        "subhalo_mass_scale": 1.0,
        "log10_axion_mass": float(params.log10_axion_mass[row]),
    }
    return {name: values[name] for name in applicable_edits(params, row)}


def _check(params: LensParameters, changes: dict) -> None:
    for name, value in changes.items():
        if name not in EDITS:
            raise SceneEditError(f"unknown scene edit {name!r}; the edits are {', '.join(EDITS)}")
        edit = EDITS[name]
        if not math.isfinite(float(value)) or not edit.lo <= float(value) <= edit.hi:
            raise SceneEditError(f"{name} = {value!r} lies outside [{edit.lo:g}, {edit.hi:g}] {edit.unit}".rstrip())
        carried = {"subhalos": has_subhalos, "vortex": has_vortex}.get(edit.needs)
        if carried is not None and not bool(carried(params).all()):
            raise SceneEditError(f"{name}: every scene of the batch needs {edit.needs} (a scene without them "
                                 "has nothing to edit)")


def edit_scene(params: LensParameters, **changes: float) -> LensParameters:
    """``params`` with the named edits of :data:`EDITS` applied to every scene (floats; see the module notes).

    Only the fields an edit names change: ``theta_E``; ``source_R_sersic``; ``source_center_x/y``;
    ``gamma1, gamma2`` (from the modulus and angle, the one not given kept at its current value);
    ``exposure``; ``subhalo_mass`` and ``subhalo_theta_E`` (theta_E ~ sqrt(M), so both stay consistent);
    ``log10_axion_mass`` and ``vortex_half_length`` (the half-length ~ 1 / m at the vortex's fixed mass).
    Raises :class:`SceneEditError` for an unknown name, a value out of range, or a missing subhalo/vortex."""
    _check(params, changes)
    p = params

    def full(value: float, like: torch.Tensor) -> torch.Tensor:
        return torch.full_like(like, float(value))

    out: dict[str, torch.Tensor] = {}
    if "theta_E" in changes:
        out["theta_E"] = full(changes["theta_E"], p.theta_E)
    if "source_R_sersic" in changes:
        out["source_R_sersic"] = full(changes["source_R_sersic"], p.source_R_sersic)
    if "source_x" in changes:
        out["source_center_x"] = full(changes["source_x"], p.source_center_x)
    if "source_y" in changes:
        out["source_center_y"] = full(changes["source_y"], p.source_center_y)
    if "shear_modulus" in changes or "shear_angle_deg" in changes:
        modulus = torch.hypot(p.gamma1, p.gamma2)
        angle = 0.5 * torch.atan2(p.gamma2, p.gamma1)
        if "shear_modulus" in changes:
            modulus = full(changes["shear_modulus"], modulus)
        if "shear_angle_deg" in changes:
            angle = full(math.radians(changes["shear_angle_deg"]), angle)
        out["gamma1"], out["gamma2"] = modulus * torch.cos(2 * angle), modulus * torch.sin(2 * angle)
    if "exposure" in changes:
        out["exposure"] = full(changes["exposure"], p.exposure)
    if "subhalo_mass_scale" in changes:
        scale = float(changes["subhalo_mass_scale"])
        out["subhalo_mass"] = p.subhalo_mass * scale
        out["subhalo_theta_E"] = p.subhalo_theta_E * math.sqrt(scale)
    if "log10_axion_mass" in changes:
        new = full(changes["log10_axion_mass"], p.log10_axion_mass)
        out["log10_axion_mass"] = new
        out["vortex_half_length"] = p.vortex_half_length * 10.0 ** (p.log10_axion_mass - new)
    return p.replace(**out)


def render_scene(simulator, params: LensParameters, seed: int, indices: Sequence[int] | torch.Tensor):
    """The scenes ``params`` (e.g. edited) rendered with the noise of images ``indices`` of data set ``seed``:
    a :class:`.simulator.LensBatch` (noisy counts ``[B, H, W]``, labels, the edited scenes' truth). With the
    drawn parameters of ``(seed, indices)`` this is ``simulator.simulate(seed, indices)``, bit for bit."""
    from .simulator import LensBatch, LensTruth

    params = params.to(device=simulator.device, dtype=simulator.dtype)
    images = simulator.add_noise(simulator.render(params), params, seed, indices)
    return LensBatch(images=images, labels=params.labels, truth=LensTruth.from_parameters(params, simulator.config))


__all__ = ["EDITS", "Edit", "SceneEditError", "applicable_edits", "edit_scene", "render_scene", "scene_values"]
