"""A torch Dataset of simulated lenses, rendered on demand (or once, with ``cache=True``).

Splits draw from fixed, disjoint seed streams: the simulator seed of a split is
``3 * seed + {"train": 0, "val": 1, "test": 2}[split]``, an injective map, so no (seed, split) pair
shares a stream with another and a test set never overlaps any training set of any seed. Image i of
a split is simulator index i with label ``i % num_classes`` (balanced classes, fixed order from
``config.class_names``), so item i is the same whatever the batch, device or worker asks for it.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..simulation import LensSimulator, LensTruth, SimulationConfig, get_config
from .transforms import prepare_batch

SPLITS = ("train", "val", "test")
STREAM_SIZE = 2**40  # the longest split: a fresh-data training stream (items are never stored)


FOLDER_STREAM_BASE = 3 * 2**61  # simulator seeds from here on belong to no split of any data seed


def folder_stream_seed(number: int) -> int:
    """The simulator seed of folder stream ``number`` (``eqlens simulate --seed``): at or above
    ``3 * 2**61``, where no ``split_seed`` reaches, so a simulated folder never holds a lens of any
    training, validation or test split."""
    if not 0 <= int(number) < 2**63 - FOLDER_STREAM_BASE:
        raise ValueError(f"folder stream must be in [0, {2**63 - FOLDER_STREAM_BASE}), got {number}")
    return FOLDER_STREAM_BASE + int(number)


def split_seed(seed: int, split: str) -> int:
    """The simulator seed of ``split`` of data set ``seed`` (see the module notes)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS}")
    if not 0 <= seed < 2**61:
        raise ValueError(f"seed must be in [0, 2**61), got {seed}")
    return 3 * seed + SPLITS.index(split)


class SimulatedLensDataset(Dataset):
    """``size`` simulated images of one split: item i -> ``(image [1, S, S] float32 in [0, 1], label)``.

    Images are noisy counts passed through :func:`eqlens.data.transforms.prepare_batch` (the native
    central ``crop`` if given, resize to ``image_size`` if given, per-image min-max). ``size`` may be
    as large as :data:`STREAM_SIZE`: nothing is stored per item, so a training stream that never
    repeats an image is just a very long split. :meth:`batch` renders many items in one call on the
    dataset's ``device`` (the trainer's path on a GPU); ``cache=True`` renders everything once.
    """

    def __init__(
        self,
        config: str | SimulationConfig = "model_i",
        split: str = "train",
        size: int = 1000,
        seed: int = 0,
        image_size: int | None = None,
        device="cpu",
        dtype=torch.float32,
        cache: bool = False,
        cache_batch_size: int = 64,
        crop: int | None = None,
    ):
        if not 0 <= size <= STREAM_SIZE:
            raise ValueError(f"size must be in [0, {STREAM_SIZE}], got {size}")
        self.config = get_config(config)
        self.split = split
        self.size = int(size)
        self.seed = int(seed)
        self.simulator_seed = split_seed(self.seed, split)
        if crop is not None and not 1 <= int(crop) <= self.config.image_size:
            raise DataError(f"a {crop} px crop does not fit the {self.config.image_size} px images "
                            f"of {self.config.name}")
        self.crop = None if crop is None or int(crop) == self.config.image_size else int(crop)
        framed = self.crop or self.config.image_size
        self.image_size = int(image_size or framed)
        self._resize = image_size if image_size and image_size != framed else None
        self.device = torch.device(device)
        self.simulator = LensSimulator(self.config, device=self.device, dtype=dtype)
        self._cache = None
        if cache:
            starts = range(0, self.size, cache_batch_size)
            chunks = [self._render(range(s, min(s + cache_batch_size, self.size))) for s in starts]
            self._cache = (
                torch.cat([c[0] for c in chunks]) if chunks else torch.empty(0, 1, self.image_size, self.image_size),
                torch.cat([c[1] for c in chunks]) if chunks else torch.empty(0, dtype=torch.int64),
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def __len__(self) -> int:
        return self.size

    def _check(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.size):
            raise IndexError(f"index out of range for a data set of {self.size} images")
        return indices

    def _render(self, indices, turn_deg=None) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(list(indices) if isinstance(indices, range) else indices, dtype=torch.int64)
        batch = self.simulator.simulate(self.simulator_seed, idx.to(self.device), turn_deg=turn_deg)
        x = prepare_batch(batch.images, self._resize, self.crop).to(torch.float32)
        return x, batch.labels

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``indices`` rendered together: ``(x [B, 1, S, S] float32, y [B] int64)`` on the dataset's device."""
        idx = self._check(torch.as_tensor(indices, dtype=torch.int64).reshape(-1))
        if self._cache is not None:
            return self._cache[0][idx.to(self._cache[0].device)], self._cache[1][idx.to(self._cache[1].device)]
        return self._render(idx)

    def turned_batch(self, indices, angles_deg: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``indices`` with their scenes turned by ``angles_deg`` (a float or one per item) and
        rendered: ``(x [B, 1, S, S] float32, y [B] int64)``, the images of :meth:`batch` turned
        counter-clockwise without resampling (:meth:`LensSimulator.simulate`'s ``turn_deg``: the
        instrument's own grid and noise at every angle). Always rendered, cache or not."""
        idx = self._check(torch.as_tensor(indices, dtype=torch.int64).reshape(-1))
        angles = torch.as_tensor(angles_deg, dtype=torch.float64)
        return self._render(idx, angles.to(self.device) if angles.dim() else float(angles))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if index < 0:
            index += self.size
        x, y = self.batch([index])
        return x[0], int(y[0])

    def truth(self, index: int) -> dict:
        """Ground truth of item ``index`` as plain Python values (see ``LensTruth.for_image``)."""
        return self.truths([index])[0]

    def truths(self, indices) -> list[dict]:
        """Ground truth of items ``indices``, sampled together (no image is rendered): one
        ``LensTruth.for_image`` dict per item, in order."""
        idx = self._check(torch.as_tensor(list(indices), dtype=torch.int64).reshape(-1))
        if idx.numel() == 0:
            return []
        truth = LensTruth.from_parameters(self.simulator.sample(self.simulator_seed, idx.tolist()), self.config)
        return [truth.for_image(k) for k in range(idx.numel())]


def render_turned_lens(simulator: LensSimulator, seed: int, index: int, label: int, angles_deg,
                       image_size: int | None = None, crop: int | None = None) -> tuple[torch.Tensor, list[dict]]:
    """One lens (image ``index`` of simulator stream ``seed``, class ``label``) with its scene turned
    by each of ``angles_deg`` and rendered: model inputs ``[A, 1, S, S]`` (resized to ``image_size``
    if given, after the native central ``crop`` if given, min-max normalised, no mask) and the truth
    of each turned scene (``LensTruth.for_image``).

    Every copy keeps the upright image's noise keys on the pixel grid, so at 0 deg it is exactly the
    simulator's image and no copy is a resampled picture (see ``LensSimulator.simulate``'s ``turn_deg``)."""
    angles = torch.as_tensor(angles_deg, dtype=torch.float64).reshape(-1)
    count = int(angles.shape[0])
    batch = simulator.simulate(seed, [int(index)] * count, labels=[int(label)] * count,
                               turn_deg=angles.to(simulator.device))
    x = prepare_batch(batch.images, image_size, crop).to(torch.float32)
    return x, [batch.truth.for_image(i) for i in range(count)]

