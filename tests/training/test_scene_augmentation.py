"""Promises of scene augmentation (``augment_mode="scene"``): each training batch is rendered with its
scenes turned by angles drawn from the run's generator (no picture is resampled), dihedral groups
still mirror, a run is reproducible and resumable, and data that cannot be re-rendered is refused
with a clear error."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from eqlens.core.run_config import TrainConfig
from eqlens.data.augment import Augmenter, _random_angles
from eqlens.data.simulated import SimulatedLensDataset
from eqlens.data.splits import DataSplits, iterate_batches
from eqlens.data.transforms import apply_circular_mask
from eqlens.errors import TrainingError
from eqlens.groups import get_group, rotate
from eqlens.simulation import get_config
from eqlens.training import train

from .conftest import TINY_CNN

SIZE = 17
TINY = dataclasses.replace(get_config("binary"), name="tiny_binary", image_size=SIZE, pixel_scale=150 * 0.05 / SIZE)


def _splits(cache: bool = True) -> DataSplits:
    sets = [SimulatedLensDataset(TINY, split=s, size=n, cache=cache) for s, n in (("train", 8), ("val", 4),
                                                                                  ("test", 4))]
    return DataSplits.from_datasets(*sets, class_names=list(TINY.class_names),
                                    description={"kind": "simulated", "spec": TINY.name})


def _config(**kw) -> TrainConfig:
    return TrainConfig(model="cnn", data=TINY.name, epochs=2, batch_size=4, robustness_size=0, device="cpu",
                       augment_mode="scene", model_kwargs=TINY_CNN, **kw)


def test_a_scene_augmented_batch_is_the_dataset_rendered_at_the_drawn_angles_then_masked():
    data = SimulatedLensDataset(TINY, split="train", size=4, cache=True)
    augmenter = Augmenter(get_group("C4"), mode="scene")
    g = torch.Generator().manual_seed(7)
    x, _ = next(iterate_batches(data, [[0, 1, 2, 3]], "cpu", turn=lambda n: augmenter.scene_angles(n, g)))
    out = augmenter.training(x, g)
    angles = torch.rand(4, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 360
    expected, _ = data.turned_batch(range(4), angles)
    assert torch.equal(out, apply_circular_mask(expected))
    assert not torch.equal(expected, data.batch(range(4))[0])


def test_dihedral_scene_augmentation_mirrors_half_the_images_exactly_and_cyclic_never():
    x = torch.rand(64, 1, SIZE, SIZE)
    cyclic = Augmenter(get_group("C8"), mode="scene", mask=False).training(x, torch.Generator().manual_seed(0))
    assert torch.equal(cyclic, x)
    mirrored = Augmenter(get_group("D4"), mode="scene", mask=False).training(x, torch.Generator().manual_seed(0))
    flipped = (mirrored != x).flatten(1).any(dim=1)
    assert 0 < int(flipped.sum()) < 64
    assert torch.equal(mirrored[flipped], torch.flip(x[flipped], dims=[-1]))


def test_without_augmentation_or_in_image_mode_no_scene_angles_are_drawn():
    g = torch.Generator().manual_seed(0)
    assert Augmenter(get_group("C4"), enabled=False, mode="scene").scene_angles(3, g) is None
    assert Augmenter(get_group("C4"), mode="image").scene_angles(3, g) is None


def test_mixed_augmentation_renders_turned_scenes_then_resamples_about_half_of_them_by_their_own_angles():
    x = torch.rand(64, 1, SIZE, SIZE)
    augmenter = Augmenter(get_group("C4"), mode="mixed", mask=False)
    assert augmenter.turns_scenes and augmenter.scene_angles(2, torch.Generator()) is not None
    out = augmenter.training(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    chosen = torch.rand(64, generator=g) < 0.5
    angles = _random_angles(64, g)
    assert 16 < int(chosen.sum()) < 48
    assert torch.equal(out[~chosen], x[~chosen])
    for i in torch.nonzero(chosen).flatten()[:4].tolist():
        assert torch.allclose(out[i], rotate(x[i:i + 1], float(angles[i]))[0], atol=1e-6)
        assert not torch.equal(out[i], x[i])


def test_a_mixed_run_is_reproducible_resumable_and_refused_on_files(tmp_path, splits):
    config = dataclasses.replace(_config(out=str(tmp_path / "full")), augment_mode="mixed")
    full = train(config, data=_splits()).model.state_dict()
    scene = train(_config(), data=_splits()).model.state_dict()
    assert any(not torch.equal(full[k], scene[k]) for k in full)
    stop = threading.Event()
    cut_config = dataclasses.replace(config, out=str(tmp_path / "cut"))
    cut = train(cut_config, progress=lambda p: p.phase == "val" and p.epoch == 1 and stop.set(), stop_event=stop,
                data=_splits())
    assert cut.cancelled and len(cut.history) == 1
    resumed = train(dataclasses.replace(cut_config, resume=True), data=_splits()).model.state_dict()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    with pytest.raises(TrainingError, match="'mixed' renders turned scenes"):
        train(dataclasses.replace(config, data="blobs", out=None), data=splits)


def test_scene_augmented_training_is_reproducible_and_differs_from_image_augmentation():
    first = train(_config(), data=_splits()).model.state_dict()
    again = train(_config(), data=_splits(cache=False)).model.state_dict()
    image = train(dataclasses.replace(_config(), augment_mode="image"), data=_splits()).model.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], image[k]) for k in first)


def test_a_resumed_scene_augmented_run_ends_with_the_same_weights(tmp_path):
    full = train(_config(out=str(tmp_path / "full")), data=_splits()).model.state_dict()
    stop = threading.Event()

    def stop_after_epoch_one(p):
        if p.phase == "val" and p.epoch == 1:
            stop.set()

    cut = train(_config(out=str(tmp_path / "cut")), progress=stop_after_epoch_one, stop_event=stop, data=_splits())
    assert cut.cancelled and len(cut.history) == 1
    resumed = train(_config(out=str(tmp_path / "cut"), resume=True), data=_splits())
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    best = resumed.model.state_dict()
    assert all(torch.equal(full[k], best[k]) for k in full)
    with pytest.raises(TrainingError, match="augment_mode"):
        train(dataclasses.replace(_config(out=str(tmp_path / "cut"), resume=True), augment_mode="image"),
              data=_splits())


def test_files_cannot_be_scene_augmented_and_an_unknown_mode_is_refused(splits):
    with pytest.raises(TrainingError, match="only simulated training data"):
        train(dataclasses.replace(_config(), data="blobs"), data=splits)
    with pytest.raises(TrainingError, match="augment_mode"):
        TrainConfig(model="cnn", augment_mode="sky")
