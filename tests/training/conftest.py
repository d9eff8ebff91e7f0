"""Tiny data for the training tests: 24x24 images, two classes a small CNN separates in a few steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from eqlens.data.splits import DataSplits

SIZE = 24
TINY_CNN = {"widths": [4, 8]}


def blob_images(n: int, seed: int, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, 1, S, S]`` images in [0, 1]: noise, plus a central bright disk for class 1 (a feature
    any rotation keeps), and labels ``[n]`` alternating 0, 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g) * 0.3
    y = torch.arange(n) % 2
    r = torch.arange(size) - (size - 1) / 2
    disk = (r[:, None] ** 2 + r[None, :] ** 2 <= (size / 5) ** 2).float()
    x[y == 1, 0] += 0.7 * disk
    return x, y


class BlobDataset(Dataset):
    """``(image [1, S, S], label)``; ``poisoned=True`` turns every image into NaN (a broken batch)."""

    class_names = ("no_sub", "sub")

    def __init__(self, n: int, seed: int):
        self.x, self.y = blob_images(n, seed)
        self.poisoned = False

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        image = self.x[i]
        return (torch.full_like(image, float("nan")) if self.poisoned else image), int(self.y[i])


def blob_splits(n_train: int = 48, n_val: int = 16, n_test: int = 16) -> DataSplits:
    return DataSplits.from_datasets(BlobDataset(n_train, 1), BlobDataset(n_val, 2), BlobDataset(n_test, 3),
                                    description={"spec": "blobs"})


@pytest.fixture
def splits() -> DataSplits:
    return blob_splits()


@pytest.fixture
def lens_folder(tmp_path):
    """A DeepLense-layout folder ``lenses/{no_sub,sub}/*.npy`` of 24x24 blob images, 12 per class."""
    root = tmp_path / "lenses"
    x, y = blob_images(24, seed=5)
    for name in ("no_sub", "sub"):
        (root / name).mkdir(parents=True)
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        name = ("no_sub", "sub")[int(label)]
        np.save(root / name / f"{name}_sim_{i}.npy", (image[0].numpy() * 1000).astype(np.float32))
    return root


def assert_same_checkpoints(first, second, running_stats_atol: float = 0.0, weights_atol: float = 0.0) -> None:
    """The ``last`` and best checkpoints under two run folders hold bit-identical tensors; batch-norm
    running statistics (sums over batches, so rounding depends on threads) equal to ``running_stats_atol``
    when it is given, and the other tensors to ``weights_atol`` when it is (two runs sharing one process's
    thread pool round a near-zero bias differently, at 1e-12; another seed moves weights by ~1e-2)."""
    from eqlens import checkpoint as ck

    for sub in (ck.LAST_DIR, "."):
        a, _ = ck.read_checkpoint(first / sub)
        b, _ = ck.read_checkpoint(second / sub)
        assert a.keys() == b.keys()
        for key in a:
            if running_stats_atol and "running_" in key:
                assert torch.allclose(a[key], b[key], rtol=0, atol=running_stats_atol), key
            elif weights_atol:
                assert torch.allclose(a[key], b[key], rtol=0, atol=weights_atol), key
            else:
                assert torch.equal(a[key], b[key]), key

