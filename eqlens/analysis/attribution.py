"""One interface to Captum's attribution methods: ``attribute(model, x, method, target) -> [B, H, W]``.

Methods (``METHODS``): Integrated Gradients, Saliency, Grad-CAM on a chosen :class:`Tap` (plain
tensors, so Captum can hook it where escnn's ``GeometricTensor`` would fail) and Occlusion. Captum
is imported inside the functions so ``eqlens`` imports without it.

Group action: an attribution of a rotated input can be rotated back into the upright frame
(:func:`rotate_back`); for an invariant model and an exact group element the attribution itself
should then be invariant, and :func:`attribution_invariance_error` measures how far it is.

Gradients at ties: a max-pool window over a flat patch (the zero corners of a masked input, runs
of zero photon counts in a raw-count crop) holds equal maxima. ``max_pool2d`` sends their gradient
to the first in memory order, which does not turn with the image, so Saliency, the raw gradient,
of an exactly invariant model was not equivariant there: 2.9e-2 at exactly 90 deg on the shipped
C4 gcnn, 1.1e-1 on the 81-px flagship, all of it in flat patches. Saliency and Grad-CAM therefore
run with the centred max-pools sharing a tie's gradient equally among the tied pixels (the same
values, the symmetric choice of gradient, as ``amax`` makes it): 1.5e-7 and 2.5e-7. Integrated
Gradients keeps the fast pools: it weighs each gradient by its pixel, the zero corners carry none,
and what ties leave elsewhere (<= 1e-4) is the size of its 32-step sum's own float noise, while
sharing ties would make it 2.5x slower. What is left are near-ties: features equal in exact
arithmetic that float32 rounds apart (a constant non-zero patch correlated with the turned kernels
sums in another order) let rounding pick the maximum; a test image with a constant band keeps
4e-4 on an untrained gcnn in float32, 4e-16 in float64.

The circular mask: a model fed ``mask * x`` never sees the pixels outside the inscribed disk, so
``attribute(..., mask=True)`` differentiates the whole map ``x -> model(mask * x)`` and gives those
pixels no gradient at all.

Display: a few outlier pixels would set a symmetric colour scale and wash every other pixel out,
so maps are shown clipped at the ``DISPLAY_PERCENTILE`` of ``|A|`` (:func:`display_limit`).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ..groups import circular_mask, rotate
from ..models.inspection import eval_mode

DISPLAY_PERCENTILE = 99.0  # colour scales of attribution maps end at this percentile of |A|

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


class _Masked(torch.nn.Module):
    """``x -> model(mask * x)``: the map a masked input goes through, for Captum to differentiate."""

    def __init__(self, model, mask: torch.Tensor):
        super().__init__()
        self.model, self.mask = model, mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * self.mask)


@contextmanager
def _ties_shared(model, active: bool = True):
    """Inside (when ``active``): every :class:`CentredMaxPool2d` of ``model`` shares a tie's gradient equally (forward
    hooks that recompute the same values; removed on exit). The caller holds the model's lock."""
    from ..models.group_conv import CentredMaxPool2d

    def share(module, inputs, output):
        return _tie_shared_pool(inputs[0])

    modules = model.modules() if active and isinstance(model, torch.nn.Module) else ()
    handles = [m.register_forward_hook(share) for m in modules if isinstance(m, CentredMaxPool2d)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _TieSharedMaxPool(torch.autograd.Function):
    """The centred max-pool's values (``max_pool2d``), its gradient shared equally among a window's tied maxima.

    The same gradient as ``unfold(...).amax(...)`` (``centred_max_pool2d(..., share_ties=True)``) in a few
    strided slices of the padded input instead of autograd through the unfolded windows, which made a
    Saliency of the flagship cost 3x an Integrated Gradients step. ``[N, C, H, W] -> [N, C, H', W']``."""

    @staticmethod
    def forward(ctx, flat, sizes, pads):
        out = F.max_pool2d(flat, kernel_size=sizes, stride=2, padding=pads)
        ctx.save_for_backward(flat, out)
        ctx.sizes, ctx.pads = sizes, pads
        return out

    @staticmethod
    def backward(ctx, grad_out):
        flat, out = ctx.saved_tensors
        (kh, kw), (ph, pw) = ctx.sizes, ctx.pads
        padded = F.pad(flat, (pw, pw, ph, ph), value=float("-inf"))
        rows, cols = out.shape[-2:]
        windows = [(i, j) for i in range(kh) for j in range(kw)]
        # offset (i, j) of every window: the padded pixels (i + 2 r, j + 2 c) for outputs (r, c)
        ties = [padded[..., i:i + 2 * rows - 1:2, j:j + 2 * cols - 1:2] == out for i, j in windows]
        share = grad_out / torch.stack(ties).sum(dim=0).clamp_min(1)
        grad = torch.zeros_like(padded)
        for (i, j), tie in zip(windows, ties, strict=True):
            grad[..., i:i + 2 * rows - 1:2, j:j + 2 * cols - 1:2] += tie * share
        return grad[..., ph:ph + flat.shape[-2], pw:pw + flat.shape[-1]], None, None


def _tie_shared_pool(x: torch.Tensor) -> torch.Tensor:
    """``centred_max_pool2d(x, share_ties=True)`` (same windows: 3 wide with padding 1 on an odd side, 2 on an
    even one, stride 2) through :class:`_TieSharedMaxPool`; ``[..., H, W] -> [..., H', W']``."""
    lead = x.shape[:-2]
    flat = x.reshape(x.shape[0], -1, *x.shape[-2:]) if x.dim() != 4 else x
    sizes = tuple(3 if n % 2 else 2 for n in x.shape[-2:])
    pads = tuple(1 if n % 2 else 0 for n in x.shape[-2:])
    out = _TieSharedMaxPool.apply(flat, sizes, pads)
    return out.reshape(*lead, *out.shape[-2:])


def attribute(model, x: torch.Tensor, method: str, target: int | torch.Tensor, layer=None, mask: bool = False,
              **kw) -> torch.Tensor:
    """Attribution of class ``target`` for inputs ``x: [B, 1, H, W]`` -> ``[B, H, W]``.

    ``method`` is a key of :data:`METHODS`; ``target`` one class for every row or one per row (``[B]``).
    The rows are independent (eval mode), so a batch of the orbit's turned copies gives, in one batched
    backward (Occlusion: ``perturbations_per_eval`` occluded copies of every row per forward), what one call
    per copy would. Keywords: ``n_steps``/``internal_batch_size`` (Integrated Gradients, zero baseline,
    Gauss-Legendre nodes; :func:`completeness_error` says how far ``n_steps`` is from converged),
    ``window``/``stride``/``perturbations_per_eval`` (Occlusion, pixels; :func:`occlusion_grid` tiles a side),
    ``layer`` (Grad-CAM: a tap name of ``model.taps()`` or a module; default the last spatial
    tap). Grad-CAM maps are upsampled bilinearly to ``H x W``; signs are kept (positive: pushes
    towards ``target``). ``mask``: the model is fed ``circular_mask * x`` (as the app and masked
    checkpoints do), so the attribution is that of ``x -> model(mask * x)`` and the pixels the model
    never sees get none from the gradient methods (see the module's docstring). Runs in eval mode
    (the model's mode is restored)."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; use one of {', '.join(METHODS)}")
    x = x.detach().clone().requires_grad_(True)
    layer = _resolve_layer(model, layer) if method == "gradcam" else None
    with eval_mode(model):
        if mask:
            model = _Masked(model, circular_mask(x.shape[-2], x.shape[-1], device=x.device, dtype=x.dtype))
        with _ties_shared(model, active=method in ("saliency", "gradcam")):
            attr = _captum(model, x, method, target, layer, kw)
    return attr.detach().sum(dim=1)


def _captum(model, x: torch.Tensor, method: str, target, layer, kw: dict) -> torch.Tensor:
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

    if method == "integrated_gradients":
        attr = IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=kw.get("n_steps", 32),
            internal_batch_size=kw.get("internal_batch_size", 16),
        )
    elif method == "saliency":
        attr = Saliency(model).attribute(x, target=target, abs=False)
    elif method == "gradcam":
        cam = LayerGradCam(model, layer).attribute(x, target=target)
        attr = LayerAttribution.interpolate(cam.sum(dim=1, keepdim=True), x.shape[-2:], interpolate_mode="bilinear")
    else:
        window = int(kw.get("window", max(3, x.shape[-1] // 8) | 1))
        stride = int(kw.get("stride", max(1, window // 2)))
        attr = Occlusion(model).attribute(
            x, sliding_window_shapes=(x.shape[1], window, window), strides=(x.shape[1], stride, stride),
            target=target, baselines=0.0, perturbations_per_eval=int(kw.get("perturbations_per_eval", 1)),
        )
    return attr


def occlusion_grid(size: int, cells: int = 3) -> tuple[int, int]:
    """``(window, stride)`` of non-overlapping Occlusion windows tiling a ``size``-px side in ``cells`` windows
    (81 px, 3 cells: 27-px windows at 0, 27, 54; the last is clipped when ``cells`` does not divide ``size``)."""
    window = -(-int(size) // int(cells))
    return window, window


def completeness_error(attr: torch.Tensor, outputs: torch.Tensor, baseline_outputs: torch.Tensor,
                       target: int | torch.Tensor) -> torch.Tensor:
    """Integrated Gradients' completeness error per row, ``|sum A - (f(x) - f(0))| / |f(x) - f(0)|``.

    ``attr [B, H, W]``; ``outputs [B, K]`` the model's outputs at the rows, ``baseline_outputs [K]`` or ``[1, K]``
    at the zero baseline; ``target`` one class or one per row. Exact integration gives 0; the Gauss-Legendre
    sum with ``n`` steps leaves an error that falls with ``n`` (the 81-px flagship, its log-probabilities from
    a zero baseline, f(x) - f(0) ~ 134: about 0.3 at 4 steps, 0.1 at 8, 0.01-0.04 at 16)."""
    rows = outputs.shape[0]
    target = torch.as_tensor(target, device=outputs.device).reshape(-1).expand(rows).long()
    gap = outputs.gather(1, target[:, None])[:, 0] - baseline_outputs.reshape(-1)[target]
    total = attr.reshape(rows, -1).sum(dim=1).to(gap.dtype)
    return (total - gap).abs() / gap.abs().clamp_min(1e-12)


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


def display_limit(*attrs: torch.Tensor, percentile: float = DISPLAY_PERCENTILE) -> float:
    """The colour-scale limit ``L`` of attribution maps shown on ``[-L, L]``: the ``percentile`` of
    ``|A|`` over every given map (one scale for maps compared side by side). Pixels beyond it are
    clipped, so a few outliers do not wash the rest out; a map of zeros gives 1e-12."""
    values = torch.cat([a.detach().reshape(-1).abs().float().cpu() for a in attrs])
    if values.numel() == 0:
        return 1e-12
    limit = float(torch.quantile(values, percentile / 100.0)) if values.numel() <= 16_000_000 else float(values.max())
    return max(limit, 1e-12)


def clipped_share(attrs: torch.Tensor, limit: float) -> float:
    """The share of pixels of ``attrs`` whose ``|A|`` exceeds ``limit`` (shown at the scale's ends)."""
    return float((attrs.abs() > limit).float().mean()) if attrs.numel() else 0.0


def normalise_for_display(attr: torch.Tensor) -> torch.Tensor:
    """Scale ``[..., H, W]`` to [-1, 1] by its largest magnitude (sign kept, 0 stays 0)."""
    peak = attr.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return attr / peak


def upsample_to(attr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, h, w] -> [B, H, W]`` bilinear (for overlays on an image of another size)."""
    return F.interpolate(attr[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
