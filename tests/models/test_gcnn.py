"""Promises of the from-scratch group CNN (eqlens.models.group_conv, eqlens.models.gcnn)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from eqlens.groups import act_on_group_channels, act_on_image, circular_mask, get_group, rotate
from eqlens.models import count_parameters, create, spec
from eqlens.models.gcnn import GroupCNN  # noqa: F401  (registers "gcnn")
from eqlens.models.group_conv import (
    CentredMaxPool2d,
    GroupBatchNorm,
    GroupConv,
    GroupPool,
    LiftingConv,
    move_kernel,
)

GROUPS = ["C4", "C8", "D4"]
TOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def worst_equivariance_error(layer, x, group, on_fields: bool) -> float:
    """max over exact g of |L(g.x) - rho(g) L(x)| / |L(x)|; ``x`` is an image or a regular field."""
    with torch.no_grad():
        out = layer(x)
        errors = []
        for g in group.exact_elements:
            moved = act_on_group_channels(x, group, g) if on_fields else act_on_image(x, g)
            errors.append(rel_err(layer(moved), act_on_group_channels(out, group, g)))
    return max(errors)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", GROUPS)
@pytest.mark.parametrize("size", [17, 21])
def test_lifting_conv_output_moves_by_rho_g_when_the_image_moves_by_g(name, size):
    group = get_group(name)
    layer = LiftingConv(group, 2, 3, kernel_size=5)
    x = torch.randn(2, 2, size, size)
    assert worst_equivariance_error(layer, x, group, on_fields=False) < TOL


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(GROUPS + ["D8"]), size=st.integers(5, 15), kernel_size=st.sampled_from([1, 3, 5]),
       seed=st.integers(0, 2**16))
def test_group_conv_is_equivariant_on_random_fields_not_just_lifted_ones(name, size, kernel_size, seed):
    group = get_group(name)
    torch.manual_seed(seed)
    layer = GroupConv(group, 3, 2, kernel_size=kernel_size)
    torch.nn.init.normal_(layer.bias)
    fields = torch.randn(2, 3, group.order, size, size)
    assert worst_equivariance_error(layer, fields, group, on_fields=True) < TOL


@pytest.mark.parametrize("name", GROUPS)
@pytest.mark.parametrize("size", [17, 18])
def test_batch_norm_relu_and_centred_pooling_commute_with_the_group(name, size):
    group = get_group(name)
    norm = GroupBatchNorm(3, group.order).train()  # batch statistics: the hardest case
    block = torch.nn.Sequential(norm, torch.nn.ReLU(), CentredMaxPool2d())
    fields = torch.randn(2, 3, group.order, size, size)
    assert worst_equivariance_error(block, fields, group, on_fields=True) < TOL


@pytest.mark.parametrize("reduction", ["max", "mean"])
def test_group_pooling_turns_rho_g_into_a_plain_move_of_the_image(reduction):
    group = get_group("D4")
    pool = GroupPool(reduction)
    fields = torch.randn(2, 3, group.order, 9, 9)
    for g in group.elements:
        assert torch.allclose(pool(act_on_group_channels(fields, group, g)), act_on_image(pool(fields), g))


def test_two_by_two_pooling_on_an_odd_size_breaks_exactness_and_centred_pooling_does_not():
    x = torch.randn(1, 4, 17, 17)
    turn = lambda t: torch.rot90(t, 1, dims=(-2, -1))  # noqa: E731
    assert rel_err(F.max_pool2d(turn(x), 2), turn(F.max_pool2d(x, 2))) > 0.1
    pool = CentredMaxPool2d()
    assert torch.equal(pool(turn(x)), turn(pool(x)))
    assert pool(x).shape[-2:] == (9, 9) and pool(torch.randn(1, 1, 18, 18)).shape[-2:] == (9, 9)


@pytest.mark.parametrize("name", GROUPS)
@pytest.mark.parametrize("size", [17, 21])
def test_every_tapped_gcnn_layer_is_equivariant_in_eval_mode(name, size):
    model = create("gcnn", num_classes=3, group=name, image_size=size, widths=(4, 6, 6)).eval()
    group = model.group
    x = torch.rand(2, 1, size, size)
    with torch.no_grad():
        upright = model.inspect(x).group_channels
        assert set(upright) == {"lift.tap", "blocks.0.tap", "blocks.1.tap"}
        for g in group.exact_elements:
            moved = model.inspect(act_on_image(x, g)).group_channels
            for tap, fields in upright.items():
                assert rel_err(moved[tap], act_on_group_channels(fields, group, g)) < TOL, (tap, str(g))


@pytest.mark.parametrize("name", GROUPS)
@pytest.mark.parametrize("shape", [(17, 17), (21, 21), (18, 18), (17, 20)])
def test_gcnn_logits_are_invariant_under_exact_elements_in_eval_mode(name, shape):
    model = create("gcnn", num_classes=3, group=name, image_size=min(shape), widths=(4, 6, 6)).eval()
    x = torch.rand(3, 1, *shape)
    with torch.no_grad():
        logits = model(x)
        for g in model.group.exact_elements:
            assert rel_err(model(act_on_image(x, g)), logits) < TOL, str(g)


def test_gcnn_with_default_widths_has_about_81k_parameters_at_c4_and_double_at_c8_and_d4():
    counts = {name: count_parameters(create("gcnn", 3, name, 33)) for name in GROUPS}
    assert 75_000 <= counts["C4"] <= 90_000
    assert 1.8 <= counts["C8"] / counts["C4"] <= 2.0
    assert counts["D4"] == counts["C8"]  # both have |G| = 8


def test_gcnn_is_registered_as_an_invariant_group_model_exact_on_any_size_and_takes_16_pixel_images():
    model_spec = spec("gcnn")
    assert model_spec.uses_group and model_spec.invariant
    assert not model_spec.odd_size_for_exactness  # centred pooling: the even-size invariance test backs this
    model = create("gcnn", num_classes=2, group="C4", image_size=16)
    assert isinstance(model, GroupCNN) and model.invariant and model.group.name == "C4"
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 2)


def test_lifting_kernels_are_the_kernel_turned_and_flipped_by_each_element():
    model = create("gcnn", 3, "D4", 17, widths=(4, 6))
    kernels = model.lifting_kernels()  # [|G|, C0, 1, k, k]
    assert kernels.shape == (8, 4, 1, 5, 5)
    assert torch.equal(kernels[0], model.lift.conv.weight.detach())
    for rot in range(4):
        assert torch.equal(kernels[rot], torch.rot90(kernels[0], rot, dims=(-2, -1)))
        assert torch.equal(kernels[4 + rot], torch.rot90(torch.flip(kernels[0], dims=[-1]), rot, dims=(-2, -1)))


def test_c8_kernels_are_disk_masked_exact_at_90_deg_and_resampled_at_45_deg():
    kernels = create("gcnn", 3, "C8", 17, widths=(4, 6)).lifting_kernels()
    disk = circular_mask(5, 5)
    assert torch.all(kernels[0] * (1 - disk) == 0)
    assert torch.equal(kernels[2], torch.rot90(kernels[0], 1, dims=(-2, -1)))
    assert torch.equal(kernels[3], torch.rot90(kernels[1], 1, dims=(-2, -1)))
    resampled = rotate(kernels[0], 45.0, exact_when_possible=False)
    assert torch.allclose(kernels[1], resampled, atol=1e-6)


def test_group_conv_kernel_for_g_permutes_the_input_orientation_axis_by_rho_g():
    group = get_group("C4")
    layer = GroupConv(group, 2, 3, kernel_size=3)
    moved = layer.transformed_kernels().detach()  # [|G|, C', C, |G|, k, k]
    for g in group.elements:
        expected = move_kernel(torch.roll(layer.weight.detach(), g.rot, dims=2), g)
        assert torch.equal(moved[g.index], expected)


def test_cached_eval_kernels_follow_weight_changes_and_training_gets_weight_gradients():
    group = get_group("C8")
    layer = GroupConv(group, 2, 2).eval()
    x = torch.randn(1, 2, group.order, 9, 9)
    with torch.no_grad():
        before = layer(x)
        assert layer(x) is not before and torch.equal(layer(x), before)
        layer.load_state_dict({"weight": torch.randn_like(layer.weight), "bias": layer.bias.clone()})
        after = layer(x)
    assert not torch.allclose(after, before)
    layer.train()
    assert torch.equal(layer(x).detach(), after)  # the uncached path gives the same numbers
    layer(x).square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_gcnn_runs_in_float64_with_resampled_c8_kernels():
    model = create("gcnn", 3, "C8", 17, widths=(4, 6)).double().eval()
    x = torch.rand(2, 1, 17, 17, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
        assert logits.dtype == torch.float64
        assert rel_err(model(torch.rot90(x, 1, dims=(-2, -1))), logits) < 1e-12


def test_layers_reject_inputs_of_the_wrong_shape_and_even_kernels():
    group = get_group("C4")
    with pytest.raises(ValueError, match="odd"):
        LiftingConv(group, 1, 2, kernel_size=4)
    with pytest.raises(ValueError, match="GroupConv expects"):
        GroupConv(group, 2, 2)(torch.randn(1, 2, 8, 9, 9))
    with pytest.raises(ValueError, match="LiftingConv expects"):
        LiftingConv(group, 1, 2)(torch.randn(1, 1, 4, 9, 9))
    with pytest.raises(ValueError, match="GroupBatchNorm expects"):
        GroupBatchNorm(2, 4)(torch.randn(2, 2, 8, 5, 5))


def _smooth_blobs(n: int, size: int, seed: int) -> torch.Tensor:
    """``[n, 1, size, size]`` sums of Gaussian blobs inside the inscribed disk: images that a
    45-deg rotation can resample without losing much."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.arange(size) - (size - 1) / 2
    yy, xx = torch.meshgrid(v, v, indexing="ij")
    centres = (torch.rand(n, 4, 2, generator=gen) - 0.5) * size * 0.5
    widths = 1.5 + 2 * torch.rand(n, 4, 1, 1, generator=gen)
    d2 = (xx - centres[..., 0, None, None]) ** 2 + (yy - centres[..., 1, None, None]) ** 2
    return (torch.exp(-d2 / (2 * widths**2)).sum(1, keepdim=True)) * circular_mask(size, size)


def test_c8_gcnn_features_change_much_less_than_a_plain_cnn_under_a_45_deg_rotation():
    """45 deg is not exact (kernels and image are resampled); measured at initialisation on
    33x33 blobs: gcnn C8 ~1-2 % relative change of the pre-logit features, plain CNN ~17-22 %."""
    x = _smooth_blobs(8, 33, seed=0)
    x45 = rotate(x, 45.0, supersample=4, mask=True)
    errors = {}
    for name in ("gcnn", "cnn"):
        torch.manual_seed(0)
        model = create(name, 3, "C8", 33).eval()
        with torch.no_grad():
            errors[name] = rel_err(model.inspect(x45).features, model.inspect(x).features)
    assert errors["gcnn"] < 0.05
    assert errors["gcnn"] < 0.25 * errors["cnn"]


# --- escnn: the same convention, the same layers -------------------------------------------------

@pytest.fixture(scope="module")
def c4_gspace():
    from escnn import gspaces  # a dependency: never skipped

    return gspaces.rot2dOnR2(4)


def _escnn_convs(gspace, fields: tuple[int, int], kernel_sizes: tuple[int, int]):
    """escnn R2Conv trivial -> regular and regular -> regular, with random (non-zero) parameters."""
    from escnn import nn as enn

    trivial = enn.FieldType(gspace, [gspace.trivial_repr])
    hidden = enn.FieldType(gspace, fields[0] * [gspace.regular_repr])
    out = enn.FieldType(gspace, fields[1] * [gspace.regular_repr])
    lift = enn.R2Conv(trivial, hidden, kernel_sizes[0], padding=kernel_sizes[0] // 2)
    conv = enn.R2Conv(hidden, out, kernel_sizes[1], padding=kernel_sizes[1] // 2)
    for p in (*lift.parameters(), *conv.parameters()):
        torch.nn.init.normal_(p)
    return trivial, hidden, lift.eval(), conv.eval()


def test_escnn_c4_regular_representation_orders_the_group_axis_like_eqlens(c4_gspace):
    group = get_group("C4")
    escnn_group = c4_gspace.fibergroup
    for g in group.elements:
        matrix = torch.as_tensor(escnn_group.regular_representation(escnn_group.element(g.rot)))
        ours = torch.zeros(4, 4, dtype=matrix.dtype)
        ours[torch.arange(4), torch.tensor(group.regular_permutation(g))] = 1  # (rho F)[h] = F[p[h]]
        assert torch.allclose(matrix, ours, atol=1e-9), str(g)


def test_escnn_and_gcnn_both_roll_the_group_axis_by_one_when_the_input_turns_by_90_deg(c4_gspace):
    from escnn import nn as enn

    group = get_group("C4")
    trivial, hidden, e_lift, e_conv = _escnn_convs(c4_gspace, (3, 2), (5, 3))
    lift, conv = LiftingConv(group, 1, 3, 5), GroupConv(group, 3, 2, 3)
    x = torch.randn(2, 1, 17, 17)
    turned = torch.rot90(x, 1, dims=(-2, -1))
    expected = lambda f: torch.rot90(torch.roll(f, 1, dims=2), 1, dims=(-2, -1))  # noqa: E731
    with torch.no_grad():
        for model in (lambda t: e_conv(e_lift(enn.GeometricTensor(t, trivial))).tensor.unflatten(1, (2, 4)),
                      lambda t: conv(lift(t))):
            assert rel_err(model(turned), expected(model(x))) < TOL


def test_gcnn_layers_reproduce_escnn_r2conv_from_its_expanded_filter(c4_gspace):
    """escnn's expanded filter ``[C' * 4, C (* 4), k, k]`` is constrained; its orientation-0 slice,
    copied into our free kernel, regenerates the other three slices (rot90 + roll) and the outputs."""
    from escnn import nn as enn

    group = get_group("C4")
    trivial, hidden, e_lift, e_conv = _escnn_convs(c4_gspace, (3, 2), (5, 3))
    lift, conv = LiftingConv(group, 1, 3, 5), GroupConv(group, 3, 2, 3)
    with torch.no_grad():
        for ours, theirs in ((lift, e_lift), (conv, e_conv)):
            filt, bias = theirs.expand_parameters()
            ours.weight.copy_(filt.unflatten(0, (-1, 4))[:, 0].reshape(ours.weight.shape))
            ours.bias.copy_(bias.unflatten(0, (-1, 4))[:, 0])
            assert torch.allclose(ours.stacked_weight(), filt, atol=1e-5 * filt.abs().max().item())
        x = torch.randn(2, 1, 17, 17)
        expected = e_conv(e_lift(enn.GeometricTensor(x, trivial))).tensor
        assert rel_err(conv(lift(x)).flatten(1, 2), expected) < TOL


@pytest.mark.parametrize("name", ["C4", "D4"])
@pytest.mark.parametrize("size", [17, 21])
def test_a_stride_2_lifting_layer_keeps_the_logits_exactly_invariant_on_odd_sizes(name, size):
    model = create("gcnn", num_classes=3, group=name, image_size=size, widths=(4, 6, 6), lift_stride=2).eval()
    x = torch.rand(3, 1, size, size)
    with torch.no_grad():
        lifted = model.lift(x)
        assert lifted.shape[-2:] == ((size + 1) // 2, (size + 1) // 2)
        logits = model(x)
        for g in model.group.exact_elements:
            assert rel_err(model(act_on_image(x, g)), logits) < TOL, str(g)


def test_a_stride_2_lifting_layer_refuses_even_sizes_where_its_grid_cannot_be_centred():
    with pytest.raises(ValueError, match="odd image size"):
        create("gcnn", num_classes=3, group="C4", image_size=18, lift_stride=2)
    model = create("gcnn", num_classes=3, group="C4", image_size=17, widths=(4, 6), lift_stride=2)
    with pytest.raises(ValueError, match="centred only on odd sizes"):
        model(torch.rand(1, 1, 18, 18))


def test_ring_means_partition_the_plane_and_keep_its_symmetry():
    from eqlens.models.gcnn import RingMeans

    rings = RingMeans(4)
    for size in (6, 7, 11):
        w = rings.weights(size, size)
        assert w.shape == (4, size * size)
        assert torch.allclose(w.sum(1), torch.ones(4))  # each row a mean over a non-empty ring
        assert ((w > 0).sum(0) == 1).all()  # every pixel on exactly one ring
        assert rings.pixel_shares(size, size).sum().item() == pytest.approx(1.0)
    x = torch.rand(2, 3, 7, 7)
    for moved in (torch.rot90(x, 1, (-2, -1)), x.flip(-1), x.transpose(-2, -1)):
        assert torch.allclose(rings(moved), rings(x), atol=1e-6)
    assert not torch.allclose(rings(x), rings(torch.roll(x, 1, -1)))  # a shift off centre is seen
    with pytest.raises(ValueError, match="distinct distances"):
        RingMeans(7).weights(3, 3)  # a 3x3 plane has 3 distances from its centre


def test_a_ring_gcnn_is_exactly_invariant_and_reads_a_global_mean_checkpoint_as_the_same_function():
    from eqlens.checkpoint.transfer import initialise_from
    from eqlens.models import create

    kw = dict(widths=[4, 6, 8], lift_stride=2)
    torch.manual_seed(0)
    plain = create("gcnn", num_classes=3, group="C4", image_size=33, **kw).eval()
    ringed = create("gcnn", num_classes=3, group="C4", image_size=33, radial_bins=3, **kw).eval()
    assert ringed.build_config["radial_bins"] == 3
    for m in plain.modules():  # batch-norm statistics that are not the identity
        if getattr(m, "running_var", None) is not None:
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    transfer = initialise_from(ringed, plain.state_dict(), "plain")
    assert "hidden.0.weight" in transfer.loaded and not transfer.skipped
    x = torch.rand(3, 1, 33, 33)
    with torch.no_grad():
        assert torch.allclose(ringed(x), plain(x), atol=1e-5)
        for k in (1, 2, 3):
            assert torch.allclose(ringed(torch.rot90(x, k, (-2, -1))), ringed(x), atol=1e-5)
    with pytest.raises(ValueError, match="radial_bins"):
        create("gcnn", num_classes=3, group="C4", image_size=33, radial_bins=50, **kw)


def test_orbit_turns_average_the_probabilities_over_finer_turns_and_keep_exact_invariance():
    from eqlens.groups import circular_mask, rotate
    from eqlens.models import create

    kw = dict(widths=[4, 6, 8], lift_stride=2, radial_bins=2)
    torch.manual_seed(0)
    single = create("gcnn", num_classes=3, group="C4", image_size=33, **kw).eval()
    averaged = create("gcnn", num_classes=3, group="C4", image_size=33, orbit_turns=4, **kw).eval()
    assert averaged.build_config["orbit_turns"] == 4 and single.build_config["orbit_turns"] == 1
    with torch.no_grad():
        single.head.weight.mul_(20.0)  # an untrained head is nearly flat: make the views' answers differ
    averaged.load_state_dict(single.state_dict())  # no parameters of its own
    assert averaged.orbit_turn_angles() == [0.0, 22.5, 45.0, 67.5]
    x = torch.rand(5, 1, 33, 33) * circular_mask(33, 33)
    with torch.no_grad():
        turned = [torch.softmax(single(rotate(x, a, mask=True, supersample=2)), -1) for a in (0.0, 22.5, 45.0, 67.5)]
        probabilities = torch.softmax(averaged(x), -1)
        assert torch.allclose(probabilities, torch.stack(turned).mean(0), atol=1e-6)
        assert not torch.allclose(probabilities.log(), turned[0].log(), atol=1e-3)  # the turns do count
        for k in (1, 2, 3):
            assert torch.allclose(averaged(torch.rot90(x, k, (-2, -1))), averaged(x), atol=1e-5)
        # A turn by a quarter of the averaged orbit's step lands on the next copy, up to resampling.
        shifted = torch.softmax(averaged(rotate(x, 22.5, mask=True, supersample=2)), -1)
        plain_shift = (torch.softmax(single(rotate(x, 22.5, mask=True, supersample=2)), -1) - turned[0]).abs().max()
        assert (shifted - probabilities).abs().max() < plain_shift
    taps = averaged.inspect(x[:2])  # the taps hold the picture's own view, one row per image
    assert taps.features.shape[0] == 2
    assert torch.allclose(taps.features, single.inspect(x[:2]).features, atol=1e-6)
    with pytest.raises(ValueError, match="orbit_turns"):
        create("gcnn", num_classes=3, group="C4", image_size=33, orbit_turns=0, **kw)
