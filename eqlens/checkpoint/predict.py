"""What a checkpoint says about images: the one ``predict``.

    model, card = load_checkpoint("checkpoints/model_i_gcnn")
    predict(model, card, raw_images).values            # [B, K] class probabilities
    predict(model, card, dataset, progress=bar).values  # the same over a dataset, batch by batch

Raw images (``[B, H, W]`` or ``[B, 1, H, W]``, counts or normalised) are prepared as the card says
(:meth:`ModelCard.prepare`: native crop, resize, min-max, mask); a dataset's items are already the
model's size (the data sources crop, resize and normalise), so only the card's mask is applied, as in
training. Outputs are decoded by the card (:meth:`ModelCard.decode`): probabilities for a classifier,
physical values for a regression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .card import ModelCard

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after every batch with the images done so far."""


@dataclass(frozen=True)
class Predictions:
    """``values``: decoded outputs (probabilities ``[N, K]`` float32, or physical values ``[N]`` float64);
    ``outputs``: the raw model outputs ``[N, K]`` float32; for a dataset, ``labels`` ``[N]`` (int64
    classes, or float regression targets) and ``indices`` ``[N]`` (the dataset's items, in row order),
    None for images. All on the CPU."""

    values: torch.Tensor
    outputs: torch.Tensor
    labels: torch.Tensor | None = None
    indices: torch.Tensor | None = None


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def _device(model, device) -> torch.device:
    return torch.device(device) if device is not None else next(model.parameters()).device


@torch.no_grad()
def dataset_outputs(model, dataset, *, mask: bool, batch_size: int = 64, device=None, workers: int = 0,
                    amp: bool = False, context=None, progress: Progress | None = None):
    """Raw outputs ``[N, K]`` (float32, CPU), labels ``[N]`` (int64; regression targets keep their float
    dtype) and dataset indices ``[N]`` of ``dataset``, its items masked to the inscribed disk if ``mask``.

    The loop behind :func:`predict`, for callers that have a mask but no card yet (the trainer's
    validation). Runs in eval mode (the mode is restored). In a distributed run each rank predicts its
    shard and every rank gets all rows; ``progress`` counts the rank's own images."""
    from ..core import distributed
    from ..data.splits import iterate_batches
    from ..data.transforms import apply_circular_mask
    from ..models.inspection import eval_mode

    context = context or distributed.DistributedContext()
    device = _device(model, device)
    indices = distributed.shard_indices(torch.arange(len(dataset)), context, pad=False)
    batches = [indices[i : i + batch_size].tolist() for i in range(0, len(indices), batch_size)]
    outputs, labels, done = [], [], 0
    with eval_mode(model):
        for x, y in iterate_batches(dataset, batches, device, workers):
            x = apply_circular_mask(x) if mask else x
            with _autocast(device, amp):
                outputs.append(model(x).float())
            labels.append(y if y.is_floating_point() else y.long())  # regression targets stay float
            done += x.shape[0]
            if progress is not None:
                progress(done, len(indices))
    k = (getattr(model, "build_config", None) or {}).get("num_classes") or (outputs[0].shape[1] if outputs else 0)
    outputs_t = torch.cat(outputs) if outputs else torch.zeros(0, k, device=device)
    labels_t = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=device)
    gathered = (distributed.gather_concat(outputs_t, context), distributed.gather_concat(labels_t, context),
                distributed.gather_concat(indices.to(device), context))
    return tuple(t.cpu() for t in gathered)


@torch.no_grad()
def _image_outputs(model, card: ModelCard, images, batch_size: int, device, amp: bool,
                   progress: Progress | None) -> torch.Tensor:
    from ..models.inspection import eval_mode

    images = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    device = _device(model, device)
    outputs, done = [], 0
    with eval_mode(model):
        for chunk in images.split(batch_size):
            with _autocast(device, amp):
                outputs.append(model(card.prepare(chunk.to(device))).float().cpu())
            done += chunk.shape[0]
            if progress is not None:
                progress(done, images.shape[0])
    if outputs:
        return torch.cat(outputs)
    return torch.zeros(0, card.num_outputs)


def predict(model, card: ModelCard, data, *, batch_size: int = 64, device=None, progress: Progress | None = None,
            workers: int = 0, amp: bool = False, context=None) -> Predictions:
    """``model``'s decoded outputs on ``data``: raw images (a tensor or array ``[B, H, W]`` /
    ``[B, 1, H, W]``, prepared as ``card`` says) or a dataset of model-sized items (``(image, label)``,
    masked as ``card`` says), in batches of ``batch_size`` on ``device`` (default: the model's).

    ``progress(done, total)`` is called after every batch; ``workers``, ``amp`` and ``context`` (a
    :class:`eqlens.core.distributed.DistributedContext`) are for datasets in training runs.
    Runs in eval mode and restores the model's mode."""
    card = ModelCard.from_json(card)
    if torch.is_tensor(data) or isinstance(data, np.ndarray):
        outputs = _image_outputs(model, card, data, batch_size, device, amp, progress)
        return Predictions(card.decode(outputs), outputs)
    outputs, labels, indices = dataset_outputs(model, data, mask=card.input.circular_mask, batch_size=batch_size,
                                               device=device, workers=workers, amp=amp, context=context,
                                               progress=progress)
    return Predictions(card.decode(outputs), outputs, labels, indices)
