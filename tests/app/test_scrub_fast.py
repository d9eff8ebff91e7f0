"""The scrubbed orbit's attributions, fast and honest: an invariant model's quarter-turned frames equal the
computed ones, Integrated Gradients refines what has not converged, a cached orbit says so, and each view's
cost shows before it runs."""

from __future__ import annotations

import numpy as np
import torch

from app import catalog, compute, lenses
from eqlens.analysis import attribution as attribution_lib

from .conftest import no_exception, ring_lens


def _fill(loaded, view, worker=None):
    orbit = compute.ScrubOrbit(loaded, lenses.prepared(ring_lens(), loaded.image_size), view)
    while not orbit.step(worker):
        pass
    assert orbit.error is None and all(f is not None for f in orbit.frames)
    return orbit


def _rows_attributed(monkeypatch):
    rows = []
    original = attribution_lib.attribute

    def counting(model, x, *args, **kw):
        rows.append(len(x))
        return original(model, x, *args, **kw)

    monkeypatch.setattr(attribution_lib, "attribute", counting)
    return rows


def test_an_invariant_model_attributes_a_quarter_of_the_frames_and_they_equal_the_computed_ones(monkeypatch):
    loaded = catalog.load(catalog.untrained_key("gcnn", "C4"))
    view = compute.ScrubView("Attributions", method="gradcam", target=1)
    rows = _rows_attributed(monkeypatch)
    turned = _fill(loaded, view)
    turned_rows = sum(rows)
    monkeypatch.setattr(compute, "QUARTER_TURN_TOLERANCE", 0.0)  # nothing passes: every frame computed
    rows.clear()
    full = _fill(loaded, view)
    assert turned.quarter and not full.quarter and turned.quarter_error < 1e-3
    assert sum(rows) == len(full.angles) + 1 and turned_rows < 0.6 * sum(rows)
    for derived, computed in zip(turned.backs, full.backs, strict=True):
        torch.testing.assert_close(derived, computed, rtol=1e-4, atol=1e-4 * float(computed.abs().max()))
    np.testing.assert_allclose([f["logits"] for f in turned.frames], [f["logits"] for f in full.frames], atol=1e-6)


def test_a_plain_model_computes_every_frame(monkeypatch):
    loaded = catalog.load(catalog.untrained_key("cnn", "C1"))
    rows = _rows_attributed(monkeypatch)
    orbit = _fill(loaded, compute.ScrubView("Attributions", method="saliency"))
    assert orbit.quarter is False and sum(rows) == len(orbit.angles) + 1


def test_integrated_gradients_refines_every_frame_above_the_tolerance(monkeypatch):
    monkeypatch.setattr(compute, "SCRUB_IG_STEPS", 2)
    monkeypatch.setattr(compute, "SCRUB_IG_MAX_STEPS", 16)
    loaded = catalog.load(catalog.untrained_key("gcnn", "C4"))
    orbit = compute.ScrubOrbit(loaded, lenses.prepared(ring_lens(), loaded.image_size),
                               compute.ScrubView("Attributions", method="integrated_gradients"))
    seen_refining = False
    while not orbit.step():
        seen_refining |= orbit.refining
    assert seen_refining and max(orbit.steps) > 2
    for error, steps in zip(orbit.completeness, orbit.steps, strict=True):
        assert error <= compute.SCRUB_IG_TOLERANCE or steps == 16
    assert "completeness error" in orbit.detail() and "Gauss-Legendre" in orbit.detail()


def test_a_cached_orbit_is_reported_as_cached_and_the_next_estimate_is_measured():
    loaded = catalog.load(catalog.untrained_key("cnn", "C1"))
    lens = ring_lens(offset=7)
    x = lenses.prepared(lens, loaded.image_size)
    view = compute.ScrubView("Attributions", method="occlusion", target=2)
    with loaded.lock:  # the loaded model is shared by the tests of this process: forget earlier orbits' times
        for key in [k for k in loaded.results if isinstance(k, tuple) and k[:1] == ("scrub-seconds-per-frame",)]:
            del loaded.results[key]
    before, how = compute.estimate_seconds(loaded, view, loaded.image_size)
    assert how == "estimated" and before > 0
    orbit = compute.scrub_orbit(loaded, x, view, lens.digest)
    while not orbit.step("session a"):
        pass
    again = compute.scrub_orbit(loaded, x, view, lens.digest)
    assert again is orbit and again.cached_for("session b") and not again.cached_for("session a")
    assert "cached" in again.summary("session b", 0.5) and "computed on the server in" not in again.summary(
        "session b", 0.5)
    assert "computed on the server in" in again.summary("session a", 0.5)
    seconds, how = compute.estimate_seconds(loaded, view, loaded.image_size)
    assert how == "measured" and np.isclose(seconds, orbit.seconds)


def test_explore_shows_each_method_s_cost_before_it_runs_and_a_second_session_sees_the_orbit_cached(app_test):
    key = catalog.untrained_key("gcnn", "C4")
    at = app_test(explore_pinned_lens=ring_lens(offset=6), explore_model=key, explore_view="Attributions")
    no_exception(at)
    loaded = catalog.load(key)
    ran = {k[3].method for k in loaded.results if k[0] == "scrub" and k[3].kind == "Attributions"}
    labels = at.selectbox(key="explore_attr_method").options
    assert "integrated_gradients" not in ran  # not run yet, and its cost is on its label
    assert all(", about " in label or ", under 1 s" in label for label in labels)
    for _ in range(100):
        if any("frames of the" in c.value for c in at.caption):
            break
        at.run()
    assert any("computed on the server in" in c.value for c in at.caption)
    other = app_test(explore_pinned_lens=ring_lens(offset=6), explore_model=key, explore_view="Attributions")
    no_exception(other)
    assert any("cached: computed earlier" in c.value for c in other.caption)
