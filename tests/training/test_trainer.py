"""Promises of eqlens.training.train on tiny in-memory data (CPU, a 4-8 channel CNN, 24x24 images)."""

import json
import math
import threading

import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.core.run_config import TrainConfig
from eqlens.data.augment import Augmenter, random_symmetry
from eqlens.data.splits import DataSplits
from eqlens.data.transforms import apply_circular_mask
from eqlens.errors import DataError, TrainingError
from eqlens.groups import DEFAULT_GROUP, get_group
from eqlens.training import train

from .conftest import TINY_CNN, BlobDataset, assert_same_checkpoints, blob_splits


def _config(out=None, **kw):
    base = dict(model="cnn", data="blobs", out=str(out) if out else None, epochs=2, batch_size=4, lr=3e-3,
                robustness_size=0, model_kwargs=TINY_CNN)
    return TrainConfig(**{**base, **kw})


def test_two_epochs_write_finite_checkpoints_and_report_val_and_test(splits, tmp_path):
    seen = []
    result = train(_config(tmp_path / "run"), progress=seen.append, data=splits)
    assert not result.cancelled and len(result.history) == 2
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
    assert {p.phase for p in seen} == {"train", "val", "test"}
    assert (tmp_path / "run" / ck.WEIGHTS_FILE).exists() and ck.find_last(tmp_path / "run") is not None
    model, card = ck.load_checkpoint(tmp_path / "run")
    assert card.metrics["test"]["n"] == 16 and card.metrics["val"]["n"] == 16
    assert card.training["images_per_s"] > 0 and card.to_json()["input"] == {
        "image_size": 24, "crop": None, "circular_mask": True, "normalisation": "per-image min-max to [0, 1]"}
    assert result.test_metrics["accuracy"] == card.metrics["test"]["accuracy"]


def test_a_plain_models_card_names_no_group_while_its_run_keeps_the_one_it_augmented_with(splits, tmp_path):
    train(_config(tmp_path / "run", epochs=1), data=splits)
    card = json.loads((tmp_path / "run" / ck.CARD_FILE).read_text())
    assert card["model"]["name"] == "cnn" and card["group"] is None and "group" not in card["model"]["build_config"]
    assert card["training"]["config"]["group"] == DEFAULT_GROUP  # mirrors and measures of the run


def test_the_best_epoch_is_the_one_with_the_best_validation_score(splits):
    result = train(_config(epochs=3, select_on="val_loss"), data=splits)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert result.val_metrics["loss"] == pytest.approx(min(losses))


def test_an_interrupted_then_resumed_run_ends_with_the_same_weights(tmp_path):
    train(_config(tmp_path / "straight"), data=blob_splits())
    stop = threading.Event()

    def stop_in_epoch_two(p):  # callbacks come every 10 steps: stop mid-way through epoch 2 (12 steps)
        if p.epoch == 2 and p.phase == "train":
            stop.set()

    cut = train(_config(tmp_path / "cut"), progress=stop_in_epoch_two, stop_event=stop, data=blob_splits())
    assert cut.cancelled and len(cut.history) == 1 and cut.test_metrics is None
    resumed = train(_config(tmp_path / "cut", resume=True), data=blob_splits())
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert_same_checkpoints(tmp_path / "straight", tmp_path / "cut")


def test_resuming_with_a_different_run_setting_is_refused(tmp_path, splits):
    train(_config(tmp_path / "run", epochs=1), data=splits)
    with pytest.raises(TrainingError, match="lr"):
        train(_config(tmp_path / "run", lr=1e-2, resume=True), data=splits)


def test_a_nan_loss_raises_training_error_and_keeps_the_last_good_checkpoint(tmp_path):
    data = blob_splits()

    def poison_after_epoch_one(p):
        if p.phase == "val" and p.epoch == 1:
            data.train.poisoned = True

    with pytest.raises(TrainingError, match="not finite"):
        train(_config(tmp_path / "run", epochs=3), progress=poison_after_epoch_one, data=data)
    last = ck.find_last(tmp_path / "run")
    model, card = ck.load_checkpoint(last)  # loading checks every weight is finite
    assert card.training["epoch"] == 1 and ck.load_state(last)["epoch"] == 1


def test_unknown_model_and_group_names_raise_eqlens_errors(splits):
    with pytest.raises(TrainingError, match="unknown model"):
        train(_config(model="no_such_model"), data=splits)
    with pytest.raises(TrainingError, match="unknown group"):
        _config(group="Q7")


def test_an_image_size_the_model_cannot_take_raises_training_error():
    tiny = DataSplits.from_datasets(*(torch.utils.data.TensorDataset(torch.rand(4, 1, 8, 8), torch.arange(4) % 2)
                                      for _ in range(3)), class_names=["a", "b"])
    with pytest.raises(TrainingError, match="8x8"):
        train(_config(), data=tiny)


def test_an_empty_dataset_raises_data_error():
    empty = torch.utils.data.TensorDataset(torch.zeros(0, 1, 24, 24), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="empty"):
        DataSplits.from_datasets(empty, empty, class_names=["a", "b"])
    with pytest.raises(DataError, match="empty"):
        train(_config(), data=DataSplits(BlobDataset(8, 0), empty, None, ["no_sub", "sub"], 24))


def test_augmentation_draws_from_its_generator_alone_and_masks_outside_the_disk():
    x = torch.rand(4, 1, 17, 17)
    a = Augmenter(get_group("D4")).training(x, torch.Generator().manual_seed(3))
    b = Augmenter(get_group("D4")).training(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, apply_circular_mask(x))
    outside = apply_circular_mask(torch.ones(17, 17)[None, None]) == 0
    assert (a[:, :, outside[0, 0]] == 0).all()


def _ring_moment(x: torch.Tensor, inner: float, outer: float) -> torch.Tensor:
    """``sum I(p) (p_x + i p_y)`` over the pixels ``p`` of ``x [B, 1, S, S]`` at radius [inner, outer) from the
    centre ``[B]``: a rotation by ``a`` multiplies it by ``exp(i a)``, a mirror ``p_x -> -p_x`` conjugates it
    (and negates it)."""
    size = x.shape[-1]
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    py, px = torch.meshgrid(-c, c, indexing="ij")
    radius = (px**2 + py**2).sqrt()
    ring = (radius >= inner) & (radius < outer)
    return (x[:, 0].double() * ring * torch.complex(px, py)).sum((-2, -1))


def _handedness(x: torch.Tensor) -> torch.Tensor:
    """``[B]`` +1 / -1: the turn from an inner to an outer blob, kept by every rotation, reversed by a mirror."""
    return torch.sign((_ring_moment(x, 7, 13) * _ring_moment(x, 1, 6).conj()).imag)


def _two_blobs(batch: int, size: int = 33) -> torch.Tensor:
    """Identical chiral images: a blob 4 px right of the centre and one 10 px out at 60 deg."""
    c = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    py, px = torch.meshgrid(-c, c, indexing="ij")

    def blob(r, deg):
        a = math.radians(deg)
        return torch.exp(-((px - r * math.cos(a)) ** 2 + (py - r * math.sin(a)) ** 2) / 2)

    return (blob(4, 0) + blob(10, 60)).expand(batch, 1, size, size).clone()


def test_cyclic_groups_only_rotate_and_dihedral_groups_also_mirror_half_the_images():
    x = _two_blobs(64)
    assert (_handedness(x) > 0).all()
    turned = random_symmetry(x, get_group("C4"), torch.Generator().manual_seed(0))
    assert (_handedness(turned) > 0).all()  # rotations only: every image keeps its handedness
    directions = torch.rad2deg(_ring_moment(turned, 1, 6).angle())
    assert directions.max() - directions.min() > 180  # ... and the images are turned, each its own way
    mirrored = (_handedness(random_symmetry(x, get_group("D4"), torch.Generator().manual_seed(0))) < 0).sum()
    assert 16 <= int(mirrored) <= 48  # about half mirrored (64 fair coins: outside [16, 48] once in 10^4)
