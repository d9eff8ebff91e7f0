"""Promises of the cost estimate (eqlens.models.cost), for every registered model: the parameter count
is exact, the activation estimate is within a factor 2 of a measured forward pass, every hyper-parameter
of the wrong type or range is refused by name, and a configuration over the budget is refused before
anything is built: by create, by the card reader, by load_checkpoint and by the trainer."""

from __future__ import annotations

import dataclasses
import functools
import resource
import time

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from eqlens.checkpoint import ModelCard, build_model, encode_weights, eval_state_dict, load_checkpoint, read_card
from eqlens.errors import CheckpointError, TrainingError
from eqlens.models import count_parameters, create, names, registry, spec
from eqlens.models.cost import MAX_ACTIVATION_BYTES, MAX_PARAMETERS
from eqlens.models.registry import builder_defaults, check_cost, estimate_cost

GROUPS = ("C4", "C8", "D4", "D8")
SIZE = 33

# A small configuration other than the defaults for each model: every registered model must have one, so a
# new model cannot join the registry without its cost function being checked off its defaults.
OTHER_CONFIGS = {
    "cnn": dict(widths=[4, 8, 12]),
    "resnet18": dict(widths=[8, 8, 16, 16]),
    "gcnn": dict(widths=[4, 6, 8], lift_kernel_size=3, kernel_size=5, hidden=12, lift_stride=2, radial_bins=3,
                 orbit_turns=2, group_pool="mean"),
    "vit": dict(patch_size=4, dim=16, depth=2, heads=2, mlp_ratio=3),
    "cvt": dict(head_hidden=16),
    "eqcvt": dict(fields=3, head_hidden=8),
    "eqcvt_inv": dict(fields=3, head_hidden=8),
    "gsa": dict(width=8, heads=2, depth=1, kernel_size=3, stem_channels=4, stem_stride=3, expansion=3),
}


def cases():
    """``(name, group, kwargs)``: each model's defaults and its other configuration, for each group it takes."""
    out = []
    for name in names():
        for group in GROUPS if spec(name).uses_group else ("C4",):
            for label, kwargs in (("defaults", {}), ("other", OTHER_CONFIGS.get(name, {}))):
                out.append(pytest.param(name, group, kwargs, id=f"{name}-{group}-{label}"))
    return out


class _Allocations(TorchDispatchMode):
    """Bytes of every new storage an op creates inside the block (storages are held, so none is reused)."""

    def __init__(self, known):
        super().__init__()
        self.known, self.total = known, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.known:
                self.known[t.untyped_storage().data_ptr()] = t
                self.total += t.untyped_storage().nbytes()
        return out


def measured_activation_bytes(model, size: int) -> int:
    """What one forward pass of one ``size`` image creates, attention through torch's math path, with the
    layers' caches emptied first (a training step rebuilds the moved kernels that an eval forward caches)."""
    for module in model.modules():
        if hasattr(module, "_cache"):
            module._cache = {} if isinstance(module._cache, dict) else None
    x = torch.zeros(1, 1, size, size)
    known = {t.untyped_storage().data_ptr(): t for t in [*model.parameters(), *model.buffers(), x]}
    allocations = _Allocations(known)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), allocations:
        model(x)
    return allocations.total


def test_every_registered_model_has_another_configuration_checked_here():
    assert set(OTHER_CONFIGS) == set(names())


@pytest.mark.parametrize("name, group, kwargs", cases())
def test_the_estimate_counts_exactly_the_parameters_the_built_model_has(name, group, kwargs):
    estimate = estimate_cost(name, num_classes=3, group=group, image_size=SIZE, **kwargs)
    model = create(name, num_classes=3, group=group, image_size=SIZE, **kwargs)
    assert estimate.parameters == count_parameters(model)


@pytest.mark.parametrize("name, group, kwargs", [c for c in cases() if c.values[1] in ("C4", "D4")])
def test_the_activation_estimate_is_within_a_factor_two_of_a_measured_forward_pass(name, group, kwargs):
    estimate = estimate_cost(name, num_classes=3, group=group, image_size=SIZE, **kwargs)
    model = create(name, num_classes=3, group=group, image_size=SIZE, **kwargs).eval()
    measured = measured_activation_bytes(model, SIZE)
    assert 0.5 <= estimate.activation_bytes / measured <= 2.0, (estimate.activation_bytes, measured)


def _refuse_to_build(monkeypatch, name):
    """Replace ``name``'s builder by one (of the same signature) that fails the test: whatever is refused must be
    refused before it."""
    @functools.wraps(spec(name).builder)
    def builder(**_):
        raise AssertionError(f"{name} was built")

    monkeypatch.setitem(registry._REGISTRY, name, dataclasses.replace(spec(name), builder=builder))


def _bad_value(default):
    return [-1] if isinstance(default, (list, tuple)) else -1


@pytest.mark.parametrize("name", names())
def test_every_hyper_parameter_of_the_wrong_range_or_type_is_refused_by_name_before_building(name, monkeypatch):
    _refuse_to_build(monkeypatch, name)
    for field, default in builder_defaults(spec(name).builder).items():
        for bad in (_bad_value(default), "7", 10**5000, [0.5] if isinstance(default, list) else 2.5):
            with pytest.raises(ValueError, match=field.replace("[", r"\[")):
                create(name, image_size=SIZE, **{field: bad})
    with pytest.raises(ValueError, match="no hyper-parameter 'not_a_setting'"):
        create(name, image_size=SIZE, not_a_setting=1)


@pytest.mark.parametrize("name", names())
def test_every_model_refuses_a_huge_image_size_before_building(name, monkeypatch):
    _refuse_to_build(monkeypatch, name)
    with pytest.raises(ValueError, match=r"over the budget.*image_size"):
        create(name, image_size=2**20)


def test_the_gcnn_of_the_issue_is_refused_by_its_widths_in_microseconds(monkeypatch):
    _refuse_to_build(monkeypatch, "gcnn")
    for widths in ([1, 16000, 16000], [1, 8000, 8000, 8000]):
        started = time.perf_counter()
        with pytest.raises(ValueError, match=rf"parameters, over the budget of {MAX_PARAMETERS:,} \(set by widths="):
            create("gcnn", num_classes=3, group="C4", image_size=81, widths=widths)
        assert time.perf_counter() - started < 0.5


def test_a_model_within_the_budget_is_priced_and_built():
    cost = check_cost("resnet18", image_size=129)  # the largest shipped family
    assert cost.parameters < MAX_PARAMETERS and cost.activation_bytes < MAX_ACTIVATION_BYTES


def _crafted_checkpoint(widths) -> bytes:
    """A real small gcnn's weights whose embedded card claims ``widths`` (the upload of the issue)."""
    from eqlens.checkpoint import make_card

    model = create("gcnn", num_classes=3, group="C4", image_size=81)  # default widths: a 331 KB file
    card = make_card(model, class_names=["a", "b", "c"], group="C4", data={}, training={})
    card["model"]["build_config"]["widths"] = list(widths)
    return encode_weights(eval_state_dict(model), card)


def test_an_uploaded_checkpoint_whose_card_claims_huge_widths_is_refused_without_building(monkeypatch):
    data = _crafted_checkpoint([1, 16000, 16000])
    _refuse_to_build(monkeypatch, "gcnn")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"model\.build_config: .*over the budget .*widths"):
        load_checkpoint(data)
    assert time.perf_counter() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 200 * 1024


def test_a_folder_checkpoint_with_such_a_card_is_refused_by_read_card_and_by_build_model(tmp_path):
    import json

    from eqlens.checkpoint import CARD_FILE, WEIGHTS_FILE, embedded_card

    data = _crafted_checkpoint([1, 8000, 8000, 8000])
    (tmp_path / WEIGHTS_FILE).write_bytes(data)
    (tmp_path / CARD_FILE).write_text(json.dumps(embedded_card(data)))
    with pytest.raises(CheckpointError, match="widths"):
        read_card(tmp_path)
    with pytest.raises(CheckpointError, match="widths"):
        load_checkpoint(tmp_path)
    card = ModelCard.from_json(embedded_card(_crafted_checkpoint([16, 24, 32, 32])))
    huge = dataclasses.replace(card, build_config={**card.build_config, "widths": [1, 16000, 16000]})
    with pytest.raises(CheckpointError, match="widths"):  # a card that skipped the reader still cannot build
        build_model(huge)


def test_the_trainer_refuses_huge_or_negative_model_kwargs_with_a_training_error(monkeypatch):
    from eqlens.core.run_config import TrainConfig
    from eqlens.training.run_setup import build_model as build_for_training

    _refuse_to_build(monkeypatch, "gcnn")
    for widths, reason in (([1, 16000, 16000], "over the budget"), ([8, -16], r"widths\[1\]")):
        config = TrainConfig(model="gcnn", model_kwargs={"widths": widths})
        with pytest.raises(TrainingError, match=reason):
            build_for_training(config, 81, 3, torch.device("cpu"))
