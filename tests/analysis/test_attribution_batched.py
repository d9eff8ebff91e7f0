"""Attributions of many turned copies in one batched call are the one-at-a-time Captum results, and
Integrated Gradients' completeness error is Captum's convergence delta relative to f(x) - f(0)."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

from eqlens.analysis import attribution
from eqlens.analysis.orbit import rotated_copies
from eqlens.models import create
from eqlens.models.group_conv import centred_max_pool2d


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)
    return create("gcnn", num_classes=3, group="C4", image_size=17, widths=(4, 6), hidden=8).eval()


@pytest.fixture(scope="module")
def copies():
    """Five turned copies of a noisy picture (no flat patch: no tied maxima) and a class per row."""
    torch.manual_seed(2)
    x = torch.rand(1, 1, 17, 17) + 0.1
    return rotated_copies(x, [0.0, 20.0, 45.0, 90.0, 160.0], mask=False), torch.tensor([0, 2, 1, 1, 0])


def _one_at_a_time(model, x, method, target, layer):
    if method == "saliency":
        return Saliency(model).attribute(x, target=target, abs=False)
    if method == "integrated_gradients":
        return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=6)
    if method == "gradcam":
        cam = LayerGradCam(model, layer).attribute(x, target=target)
        return LayerAttribution.interpolate(cam.sum(dim=1, keepdim=True), x.shape[-2:], interpolate_mode="bilinear")
    return Occlusion(model).attribute(x, sliding_window_shapes=(1, 6, 6), strides=(1, 6, 6), target=target,
                                      baselines=0.0)


@pytest.mark.parametrize("method", list(attribution.METHODS))
def test_one_batched_call_over_the_copies_equals_captum_one_copy_at_a_time(tiny, copies, method):
    x, targets = copies
    layer = tiny.taps()["blocks.0.tap"] if method == "gradcam" else None
    kw = dict(n_steps=6, internal_batch_size=30, window=6, stride=6, perturbations_per_eval=9)
    batched = attribution.attribute(tiny, x, method, targets, layer=layer, **kw)
    assert batched.shape == (5, 17, 17)
    for k in range(len(x)):
        alone = _one_at_a_time(tiny, x[k:k + 1].clone().requires_grad_(True), method, int(targets[k]), layer)
        torch.testing.assert_close(batched[k], alone.detach().sum(dim=1)[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("size", [9, 41])
def test_the_fast_tie_sharing_pool_has_the_values_and_the_shared_gradient_of_the_unfolded_one(size):
    torch.manual_seed(3)
    x = torch.rand(2, 3, 4, size, size)
    x[..., :5, :5] = 0.5  # a flat patch: ties
    upstream = torch.randn_like(centred_max_pool2d(x))
    fast, slow = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    (attribution._tie_shared_pool(fast) * upstream).sum().backward()
    (centred_max_pool2d(slow, share_ties=True) * upstream).sum().backward()
    torch.testing.assert_close(attribution._tie_shared_pool(x), centred_max_pool2d(x), rtol=0, atol=0)
    torch.testing.assert_close(fast.grad, slow.grad)


def test_the_completeness_error_is_captum_s_convergence_delta_over_f_x_minus_f_0(tiny, copies):
    x, targets = copies
    ig = IntegratedGradients(tiny)
    errors = []
    for steps in (2, 64):
        attr, delta = ig.attribute(x, baselines=torch.zeros_like(x), target=targets, n_steps=steps,
                                   return_convergence_delta=True)
        with torch.no_grad():
            outputs, base = tiny(x), tiny(torch.zeros(1, 1, 17, 17))[0]
        error = attribution.completeness_error(attr.sum(dim=1), outputs, base, targets)
        gap = outputs.gather(1, targets[:, None])[:, 0] - base[targets]
        torch.testing.assert_close(error * gap.abs(), delta.abs().float(), rtol=1e-3, atol=1e-5)
        errors.append(float(error.max()))
    assert errors[1] < errors[0]  # more steps, closer to f(x) - f(0)


def test_the_occlusion_grid_tiles_the_81_px_input_in_three_windows():
    assert attribution.occlusion_grid(81) == (27, 27)
    window, stride = attribution.occlusion_grid(33)
    assert window == stride == 11
