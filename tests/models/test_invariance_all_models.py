"""Every registered model keeps the symmetry promise of its spec, under the exact group elements.

An invariant model's logits agree to float noise for every quarter turn (and flip, for D4) of an
odd-sized random input; a model not flagged invariant must show a real change, so a model that
is invariant by accident, or a check that measures nothing, fails too. Every group tap of every
model must be equivariant: ``F(g x) = rho(g) F(x)``.
"""

import pytest
import torch

from eqlens.analysis.equivariance import FEATURES_KEY, PLAIN_ROTATION, exact_errors
from eqlens.models import spec

from ..analysis.toy_models import LiftingModel
from .registry_cases import GROUPS, build, model_cases, random_images

EXACT = 1e-5  # float32 noise is ~1e-7 relative
BROKEN = 1e-4  # the seed EqCvT, the least broken model known, sits at 3e-3


def group_tap_errors(layer_errors: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in layer_errors.items() if not k.endswith(PLAIN_ROTATION) and k != FEATURES_KEY}


def assert_symmetry_as_promised(model, group: str, invariant: bool, size: int) -> None:
    errors = exact_errors(model, random_images(size), group)
    logit_error = errors["invariance_error"]["max"]
    if invariant:
        assert logit_error < EXACT, f"logits change by {logit_error:.2e} under {group}: {errors['invariance_error']}"
    else:
        assert logit_error > BROKEN, f"logits change only by {logit_error:.2e} under {group}, but not flagged invariant"
    taps = group_tap_errors(errors["layer_equivariance"])
    broken_taps = {k: v for k, v in taps.items() if not v < EXACT}
    assert not broken_taps, f"group taps not equivariant under {group}: {broken_taps}"


@pytest.mark.parametrize("name, group", model_cases())
def test_each_model_is_exactly_invariant_if_flagged_so_and_visibly_not_otherwise(name, group):
    model = build(name, group)
    assert_symmetry_as_promised(model, group, spec(name).invariant, model.build_config["image_size"])


@pytest.mark.parametrize("group", GROUPS)
def test_the_check_accepts_a_model_invariant_by_construction_and_rejects_a_broken_one(group):
    torch.manual_seed(0)
    assert_symmetry_as_promised(LiftingModel(group).eval(), group, invariant=True, size=17)
    with pytest.raises(AssertionError, match="logits change"):
        assert_symmetry_as_promised(LiftingModel(group).eval(), group, invariant=False, size=17)
    with pytest.raises(AssertionError, match="logits change by"):
        assert_symmetry_as_promised(LiftingModel(group, equivariant=False).eval(), group, invariant=True, size=17)
