"""One interface to Captum's attribution methods: ``attribute(model, x, method, target) -> [B, H, W]``.

Methods (``METHODS``): Integrated Gradients, Saliency, Grad-CAM on a chosen :class:`Tap` (plain
tensors, so Captum can hook it where escnn's ``GeometricTensor`` would fail) and Occlusion. Captum
is imported inside the functions so ``eqlens`` imports without it.

Group action: an attribution of a rotated input can be rotated back into the upright frame
(:func:`rotate_back`); for an invariant model and an exact group element the attribution itself
should then be invariant, and :func:`attribution_invariance_error` measures how far it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..groups import circular_mask, rotate

METHODS = {
    "integrated_gradients": "Integrated Gradients",
    "saliency": "Saliency",
    "gradcam": "Grad-CAM",
    "occlusion": "Occlusion",
}


def _resolve_layer(model, layer):
    taps = model.taps()
    if layer is None:
        # The last spatial tap: coarsest maps, most class-specific (Grad-CAM's usual choice).
        spatial = [name for name, tap in taps.items() if tap.kind != "features"]
        if not spatial:
            raise ValueError("Grad-CAM needs a spatial tap; this model has none")
        layer = spatial[-1]
    if isinstance(layer, str):
        if layer not in taps:
            raise ValueError(f"unknown tap {layer!r}; taps: {', '.join(taps)}")
        if taps[layer].kind == "features":
            raise ValueError(f"tap {layer!r} holds pre-logit features [B, D]: Grad-CAM needs a spatial map")
        return taps[layer]
    return layer


def attribute(model, x: torch.Tensor, method: str, target: int | torch.Tensor, layer=None, **kw) -> torch.Tensor:
    """Attribution of class ``target`` for inputs ``x: [B, 1, H, W]`` -> ``[B, H, W]``.

    ``method`` is a key of :data:`METHODS`. Keywords: ``n_steps``/``internal_batch_size``
    (Integrated Gradients, zero baseline), ``window``/``stride`` (Occlusion, pixels),
    ``layer`` (Grad-CAM: a tap name of ``model.taps()`` or a module; default the last spatial
    tap). Grad-CAM maps are upsampled bilinearly to ``H x W``; signs are kept (positive: pushes
    towards ``target``). The model is put in eval mode."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; use one of {', '.join(METHODS)}")
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    if method == "integrated_gradients":
        attr = IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=kw.get("n_steps", 32),
            internal_batch_size=kw.get("internal_batch_size", 16),
        )
    elif method == "saliency":
        attr = Saliency(model).attribute(x, target=target, abs=False)
    elif method == "gradcam":
        cam = LayerGradCam(model, _resolve_layer(model, layer)).attribute(x, target=target)
        attr = LayerAttribution.interpolate(cam.sum(dim=1, keepdim=True), x.shape[-2:], interpolate_mode="bilinear")
    else:
        window = int(kw.get("window", max(3, x.shape[-1] // 8) | 1))
        stride = int(kw.get("stride", max(1, window // 2)))
        attr = Occlusion(model).attribute(
            x, sliding_window_shapes=(x.shape[1], window, window), strides=(x.shape[1], stride, stride),
            target=target, baselines=0.0,
        )
    return attr.detach().sum(dim=1)


def rotate_back(attr: torch.Tensor, angle_deg: float, flip: bool = False) -> torch.Tensor:
    """Undo ``rotate(flip(x), angle_deg)`` on an attribution ``[B, H, W]`` (exact at 90-deg multiples)."""
    out = rotate(attr[:, None], -angle_deg, supersample=2)[:, 0]
    return torch.flip(out, dims=[-1]) if flip else out


def attribution_invariance_error(reference: torch.Tensor, rotated_back: torch.Tensor, exact: bool = True) -> float:
    """``|A(x) - R^-1 A(R x)| / |A(x)|`` between two ``[B, H, W]`` attributions in the upright frame.

    For angles that are not pixel-exact the corners that left the frame are excluded
    (``exact=False`` compares inside the inscribed disk only)."""
    if not exact:
        mask = circular_mask(*reference.shape[-2:], device=reference.device, dtype=reference.dtype)
        reference, rotated_back = reference * mask, rotated_back * mask
    scale = reference.norm().clamp_min(1e-12)
    return float((reference - rotated_back).norm() / scale)


def normalise_for_display(attr: torch.Tensor) -> torch.Tensor:
    """Scale ``[..., H, W]`` to [-1, 1] by its largest magnitude (sign kept, 0 stays 0)."""
    peak = attr.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return attr / peak


def upsample_to(attr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, h, w] -> [B, H, W]`` bilinear (for overlays on an image of another size)."""
    return F.interpolate(attr[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
