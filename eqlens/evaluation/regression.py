"""Evaluate a regression model: MSE, MAE, R^2 in physical units, predicted-vs-true pairs, invariance.

:func:`evaluate_regression` returns one JSON-able dict with stable keys (docs/training.md):

- ``task``, ``target``, ``unit``; ``n``; ``mse``, ``mae``, ``rmse``, ``r2`` of the physical
  predictions (:func:`eqlens.evaluation.metrics.regression_report`); ``loss``: the MSE of the
  standardised outputs (the training loss, used for selection ties);
- ``pairs``: one ``{"source", "true", "predicted"}`` per image, physical units (a predicted-vs-true plot);
- ``robustness``: :func:`regression_robustness` on the first ``robustness_size`` images (None when
  skipped), and ``invariance_error``: its ``invariance_error["max"]``, the worst change of the
  physical prediction under the group's exact elements (None when skipped); ``robustness["sky"]``:
  :func:`regression_sky_robustness`, the same lenses with their scenes turned and rendered.

The output is a number, not a class, so the invariance measures are absolute changes in the
target's unit (a relative error of a standardised output near 0 would say little); the relative
error of the raw output and the per-layer errors of :func:`eqlens.analysis.equivariance.exact_errors`
are reported beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from ..checkpoint.predict import dataset_outputs
from ..core import distributed
from ..core.tasks import TargetScaler, regression_target
from ..data.splits import describe_item
from ..errors import DataError
from ..groups import Group, act_on_image, rotate
from ..models.inspection import eval_mode
from .classification import probe_group, robustness_images, turned_outputs
from .metrics import regression_report

SUMMARY_EXCLUDES = ("pairs",)
"""Keys of a report that stay out of a model card (per-image rows)."""


def _physical_values(model, x: torch.Tensor, scaler: TargetScaler, batch_size: int,
                     transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Physical predictions ``[B]`` (float64, CPU) for ``transform(x)``, in eval mode, in batches."""
    from ..analysis.equivariance import model_device_dtype

    device, dtype = model_device_dtype(model)
    parts = []
    with eval_mode(model), torch.no_grad():
        for chunk in x.split(batch_size):
            parts.append(scaler.decode(model(transform(chunk.to(device=device, dtype=dtype))).reshape(-1)).cpu())
    return torch.cat(parts)


def _summary(changes: torch.Tensor, elements, group: Group) -> dict:
    per_image = changes.max(dim=0).values
    return {"group": group.name, "max": float(per_image.max()), "mean": float(per_image.mean()),
            "per_element": {str(g): {"max": float(changes[e].max()), "mean": float(changes[e].mean())}
                            for e, g in enumerate(elements)}}


def regression_robustness(model, x: torch.Tensor, y: torch.Tensor, scaler: TargetScaler, group: str | Group,
                          angles: Iterable[float] | None = None, batch_size: int = 32, supersample: int = 4) -> dict:
    """How the physical prediction of ``x [B, 1, S, S]`` (true values ``y [B]``) moves under rotations.

    Keys: ``group``, ``num_images``; ``invariance_error`` (``max``, ``mean``, ``per_element``):
    ``|p(g x) - p(x)|`` in the target's unit over the exact non-identity elements ``g`` (90 deg
    turns, flips for D_N), max/mean over images of the worst element; ``output_relative_error`` and
    ``layer_equivariance``: :func:`eqlens.analysis.equivariance.exact_errors` on the raw output;
    ``angles_deg``, ``mae_by_angle`` (MAE against ``y`` at each angle, the copy cut to the inscribed
    disk and resampled with ``supersample``), ``worst_angle_mae``, ``orbit_std`` (mean over images
    of the std of the prediction over the angles)."""
    from ..analysis.equivariance import DEFAULT_ANGLES, exact_errors

    angles = [float(a) for a in (DEFAULT_ANGLES if angles is None else angles)]
    if not angles:
        raise ValueError("need at least one angle")
    exact = exact_errors(model, x, group, batch_size)
    elements = [g for g in group.exact_elements if g != group.identity]
    upright = _physical_values(model, x, scaler, batch_size, lambda c: c)
    changes = torch.stack([(_physical_values(model, x, scaler, batch_size, lambda c, g=g: act_on_image(c, g))
                            - upright).abs() for g in elements])  # [E, B]
    by_angle = torch.stack([_physical_values(model, x, scaler, batch_size,
                                             lambda c, a=a: rotate(c, a, supersample=supersample, mask=True))
                            for a in angles])  # [A, B]
    mae = (by_angle - y.double().cpu()[None]).abs().mean(dim=1)
    return {
        "group": group.name,
        "num_images": int(x.shape[0]),
        "invariance_error": _summary(changes, elements, group),
        "output_relative_error": exact["invariance_error"],
        "layer_equivariance": exact["layer_equivariance"],
        "angles_deg": angles,
        "mae_by_angle": [float(v) for v in mae],
        "worst_angle_mae": float(mae.max()),
        "orbit_std": float(by_angle.std(dim=0, unbiased=False).mean()),
    }


def regression_sky_robustness(model, dataset, size: int, scaler: TargetScaler, angles: Iterable[float] | None = None,
                              device=None, mask: bool = True) -> dict | None:
    """The physical prediction over turned *scenes* (:func:`eqlens.evaluation.classification.turned_outputs`:
    rendered, not resampled), None for data that cannot be re-rendered. Keys: ``num_images``,
    ``angles_deg``, ``mae_by_angle``, ``worst_angle_mae``, ``orbit_std`` (mean over lenses of the
    prediction's std over the angles), in the target's unit."""
    from ..analysis.equivariance import DEFAULT_ANGLES

    angles = [float(a) for a in (DEFAULT_ANGLES if angles is None else angles)]
    turned = turned_outputs(model, dataset, size, angles, device, mask)
    if turned is None:
        return None
    outputs, y = turned
    values = scaler.decode(outputs[..., 0].double())  # [A, n]
    mae = (values - y.double()[None]).abs().mean(dim=1)
    return {"num_images": int(y.shape[0]), "angles_deg": angles, "mae_by_angle": [float(v) for v in mae],
            "worst_angle_mae": float(mae.max()), "orbit_std": float(values.std(dim=0, unbiased=False).mean())}


def evaluate_regression(model, dataset, task: str, scaler: TargetScaler, *, batch_size: int = 64, device=None,
                        mask: bool = True, robustness_size: int = 64, group=None, angles=None,
                        with_pairs: bool = True, workers: int = 0, amp: bool = False,
                        context: distributed.DistributedContext | None = None) -> dict:
    """Metrics of regression ``model`` on ``dataset`` (items ``(image, physical target)``); keys in the
    module docstring. ``mask`` must match training (``card.input.circular_mask``)."""
    target = regression_target(task)
    if len(dataset) == 0:
        raise DataError("cannot evaluate on an empty dataset")
    outputs, true, indices = dataset_outputs(model, dataset, mask=mask, batch_size=batch_size, device=device,
                                             workers=workers, amp=amp, context=context)
    if outputs.shape[1] != 1 or not true.is_floating_point():
        raise DataError(f"a regression needs one output and float targets; got {outputs.shape[1]} outputs and "
                        f"{true.dtype} targets (is the data set a classification one?)")
    predicted = scaler.decode(outputs[:, 0])
    report = {"task": task, "target": target.name, "unit": target.unit, **regression_report(predicted, true)}
    report["loss"] = float(F.mse_loss(outputs[:, 0], scaler.encode(true))) if len(true) else float("nan")
    if with_pairs:
        report["pairs"] = [{"source": describe_item(dataset, int(i)), "true": float(t), "predicted": float(p)}
                           for i, t, p in zip(indices.tolist(), true.tolist(), predicted.tolist(), strict=True)]
    report["robustness"], report["invariance_error"] = None, None
    if robustness_size > 0:
        x, y = robustness_images(model, dataset, robustness_size, device, mask)
        report["robustness"] = regression_robustness(model, x, y, scaler, probe_group(model, group), angles)
        report["robustness"]["sky"] = regression_sky_robustness(model, dataset, robustness_size, scaler, angles,
                                                                device, mask)
        report["invariance_error"] = report["robustness"]["invariance_error"]["max"]
    return report
