"""The orbit scrubbed in the browser, server side: the frames of one (model, lens, view), filled
coarse to fine, cached, small, and in step with the precise angle the server computes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app import catalog, compute, lenses, settings
from eqlens.groups import get_group

from .conftest import no_exception, ring_lens


def _filled(loaded, view, flip=False):
    x = lenses.prepared(ring_lens(), loaded.image_size)
    orbit = compute.ScrubOrbit(loaded, x, view, flip=flip)
    steps = 0
    while not orbit.step():
        steps += 1
    assert orbit.complete and orbit.error is None and all(f is not None for f in orbit.frames)
    return orbit, x


def test_the_angles_hold_every_5_deg_and_the_group_s_exact_angles():
    angles = compute.scrub_angles(get_group("C16"), steps=72)
    assert len(angles) >= 72 and {0.0, 5.0, 22.5, 90.0, 337.5} <= set(angles.tolist())
    assert np.all(np.diff(angles) > 0)


def test_the_fill_goes_coarse_to_fine_and_covers_every_angle_once():
    angles = compute.scrub_angles(get_group("C8"), steps=72)
    batches = compute.fill_order(angles, [g.angle_deg for g in get_group("C8").elements])
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(angles)))
    assert {angles[i] for i in batches[0]} == {0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0}


def test_an_invariant_model_s_frames_are_flat_at_the_exact_angles_and_the_stabilised_view_still():
    loaded = catalog.load(catalog.untrained_key("gcnn", "C4"))
    tap = next(n for n, t in loaded.model.taps().items() if t.kind == "group")
    orbit, _ = _filled(loaded, compute.ScrubView("Group channels", tap=tap, field=1))
    upright = np.array(orbit.frames[0]["probs"])
    for angle in (90.0, 180.0, 270.0):
        frame = orbit.frames[int(np.flatnonzero(orbit.angles == angle)[0])]
        np.testing.assert_allclose(frame["probs"], upright, atol=1e-5)
        assert frame["metric"] < 1e-5
    off = orbit.frames[int(np.flatnonzero(orbit.angles == 45.0)[0])]
    assert off["panels"]["channels"] != orbit.frames[0]["panels"]["channels"]
    payload = json.dumps(orbit.payload())
    assert len(payload) < 3e6


def test_a_frame_agrees_with_the_precise_angle_the_server_computes():
    loaded = catalog.load(catalog.untrained_key("gcnn", "C4"))
    orbit, x = _filled(loaded, compute.ScrubView("Attributions", method="gradcam"))
    i = int(np.flatnonzero(orbit.angles == 30.0)[0])
    now = compute.move(loaded, x, 30.0, upright=False, attention=False)
    np.testing.assert_allclose(orbit.frames[i]["logits"], now.inspection.logits[0].numpy(), atol=1e-5)
    assert orbit.frames[i]["metric"] is not None and orbit.frames[0]["metric"] < 1e-5


def test_a_plain_model_offers_attributions_only_and_a_mirror_orbit_fills():
    loaded = catalog.load(catalog.untrained_key("cnn", "C1"))
    assert compute.available_views(loaded) == ["Attributions"]
    orbit, _ = _filled(loaded, compute.ScrubView("Attributions", method="saliency", target=1), flip=True)
    assert len(orbit.frames) == settings.ORBIT_STEPS


def test_an_attention_model_opens_on_attention_and_its_frames_carry_every_head_and_the_rollout():
    loaded = catalog.load(catalog.untrained_key("eqcvt", "C4"))
    assert compute.available_views(loaded)[0] == "Attention"
    block = next(iter(loaded.model.attention_modules()))
    orbit, _ = _filled(loaded, compute.ScrubView("Attention", block=block, row=10, col=20))
    assert orbit.heads >= 1 and orbit.frames[3]["panels"]["maps"] != orbit.frames[0]["panels"]["maps"]


def test_the_orbit_is_cached_per_model_lens_and_view():
    loaded = catalog.load(catalog.untrained_key("cnn", "C1"))
    lens = ring_lens()
    x = lenses.prepared(lens, loaded.image_size)
    view = compute.ScrubView("Attributions", method="gradcam")
    first = compute.scrub_orbit(loaded, x, view, lens.digest)
    assert compute.scrub_orbit(loaded, x, view, lens.digest) is first
    other = compute.ScrubView("Attributions", method="saliency")
    assert compute.scrub_orbit(loaded, x, other, lens.digest) is not first


@pytest.mark.parametrize(("model", "view"), [(("cnn", "C1"), "Attributions"), (("gcnn", "C4"), "Group channels")])
def test_explore_opens_on_a_view_the_model_has(app_test, model, view):
    at = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key(*model))
    no_exception(at)
    assert at.radio(key="explore_view").value == view
    assert not any("no attention" in i.value for i in at.info)
    # Each run computes at least one batch of the orbit (more while its time slice lasts): rerun until it is
    # complete, however slow the machine, then the caption says it was computed and sent.
    for _ in range(100):
        if any("frames of the" in c.value for c in at.caption):
            break
        at.run()
        no_exception(at)
    assert any("frames of the" in c.value for c in at.caption)  # the scrubber's orbit was computed and sent
