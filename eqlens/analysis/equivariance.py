"""How well a model respects rotations: exact in-group errors, accuracy over angles, the 8 x 45 deg logit std.

Every function takes model-ready images ``x: [B, C, S, S]`` (square: exact 90 deg turns must
keep the shape), evaluates in eval mode without gradients, in batches, on the model's device,
and hands back CPU tensors or plain floats. Five measures, kept apart on purpose:

1. :func:`invariance_error` - ``|f(g x) - f(x)| / |f(x)|`` on the logits for the exact
   elements ``g`` of the group (multiples of 90 deg, and flips for D_N). Pixel permutations
   only, so an invariant model sits at float noise (~1e-7) and anything above is the model.
2. :func:`layer_equivariance_errors` - the same per tap: ``|F(g x) - rho(g) F(x)| / |F(x)|`` for
   group taps ``[B, C, |G|, H, W]`` (rho: the left-regular action, a rotation by ``k`` quarter
   turns of C4 rolls the group axis by ``k`` and turns every map), ``|F(g x) - g F(x)| / |F(x)|``
   for plain maps ``[B, C, H, W]``, ``|F(g x) - F(x)| / |F(x)|`` for the pre-logit features.
3. :func:`predictions_over_angles` / :func:`accuracy_over_angles` - class probabilities and
   accuracy on a circle of angles, the off-grid ones resampled with supersampling; every angle,
   0 deg included, is cut to the inscribed disk so corners that leave the frame never count.
4. :func:`orbit_consistency` - share of rotated copies predicted as the upright copy.
5. :func:`logit_std_8x45` - the EqCvT project's figure (std of one logit over 8 x 45 deg,
   PIL-like bilinear, no mask), kept so old and new numbers can be read side by side. Reports written
   before it had this name call it ``seed_logit_std``: :func:`report_value` reads either.

:func:`robustness_report` runs them all and returns JSON-ready data (keys in its docstring).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from ..groups import DEFAULT_GROUP, Group, GroupElement, act_on_group_channels, act_on_image, get_group, rotate
from ..models.inspection import LensModel, eval_mode

DEFAULT_ANGLES = tuple(range(0, 360, 15))
"""Angles (deg) of :func:`robustness_report`: every 15 deg, so each 90 deg multiple is in."""

ANGLES_8X45 = tuple(range(0, 360, 45))
"""The EqCvT project's 8 rotations of 45 deg (:func:`logit_std_8x45`)."""

FORMER_KEYS = {"logit_std_8x45": "seed_logit_std", "logit_std_8x45_per_image": "seed_logit_std_per_image"}
"""Report keys under their former names, as the cards written before the rename (issue 14) hold them."""


def report_value(report: Mapping, key: str):
    """``report[key]`` of a robustness report, read under its former name (:data:`FORMER_KEYS`) in older
    reports and cards; None when neither is there."""
    if key in report:
        return report[key]
    return report.get(FORMER_KEYS.get(key, key))

PLAIN_ROTATION = " (plain rotation)"
"""Suffix of :func:`layer_equivariance_errors` keys for map taps, compared with ``g F(x)``."""

FEATURES_KEY = "features (invariance)"
"""Key of :func:`layer_equivariance_errors` for the pre-logit features, compared with ``F(x)``."""


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter or buffer (CPU/float32 if none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``|value - reference| / |reference|`` per image (L2 over all but the batch axis), ``[B]``,
    in float64. A zero reference gives 0 where the value is also zero."""
    diff = (value.double() - reference.double()).flatten(1).norm(dim=1)
    ref = reference.double().flatten(1).norm(dim=1)
    return diff / ref.clamp_min(torch.finfo(torch.float64).tiny)


def _check_images(x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"expected square images [B, C, S, S], got {shape}")
    if x.shape[0] == 0:
        raise ValueError("expected at least one image, got an empty batch")
    return x


def _resolve_group(model: nn.Module, group: str | Group | None) -> Group:
    if group is not None:
        return get_group(group)
    return getattr(model, "group", None) or get_group(DEFAULT_GROUP)


def _batches(model: nn.Module, x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Chunks of ``x`` on the model's device and in its dtype."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device, dtype = model_device_dtype(model)
    for chunk in _check_images(x).split(batch_size):
        yield chunk.to(device=device, dtype=dtype)


# --------------------------------------------------------------------------- exact group elements


def _nontrivial_exact_elements(group: Group) -> tuple[GroupElement, ...]:
    elements = tuple(g for g in group.exact_elements if g != group.identity)
    if not elements:
        raise ValueError(f"{group.name} has no exact element besides the identity (needs 90 deg turns or flips)")
    return elements


def _outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, tuple[str, torch.Tensor]]]:
    """Logits and every tap as ``key -> (kind, tensor)``; plain modules have no taps."""
    if not isinstance(model, LensModel):
        return model(x), {}
    inspection = model.inspect(x, attention=False)
    taps: dict[str, tuple[str, torch.Tensor]] = {}
    for name, value in inspection.group_channels.items():
        taps[name] = ("group", value)
    for name, value in inspection.maps.items():
        if value.dim() == 4:  # token sequences or other layouts have no plane to turn
            taps[name + PLAIN_ROTATION] = ("map", value)
    if inspection.features is not None:
        taps[FEATURES_KEY] = ("features", inspection.features)
    return inspection.logits, taps


def _expected(kind: str, reference: torch.Tensor, group: Group, g: GroupElement, key: str) -> torch.Tensor:
    """What an equivariant tap must show for ``g . x``, given its value ``reference`` for ``x``."""
    if kind == "features":
        return reference
    if kind == "map":
        return act_on_image(reference, g)
    if reference.shape[2] != group.order:
        raise ValueError(
            f"tap {key!r} has |G|={reference.shape[2]} orientation channels but the group is "
            f"{group.name} (|G|={group.order}); measure with the group the model was built for"
        )
    return act_on_group_channels(reference, group, g)


def _orbit_errors(model: nn.Module, x: torch.Tensor, group: Group, batch_size: int):
    """Relative errors for every non-identity exact element: logits ``[E, B]`` and taps ``key -> [E, B]``."""
    elements = _nontrivial_exact_elements(group)
    logit_parts: list[torch.Tensor] = []
    tap_parts: dict[str, list[torch.Tensor]] = {}
    with eval_mode(model), torch.no_grad():
        for chunk in _batches(model, x, batch_size):
            ref_logits, ref_taps = _outputs(model, chunk)
            chunk_logits, chunk_taps = [], {key: [] for key in ref_taps}
            for g in elements:
                logits, taps = _outputs(model, act_on_image(chunk, g))
                chunk_logits.append(relative_error(logits, ref_logits).cpu())
                for key, (kind, reference) in ref_taps.items():
                    expected = _expected(kind, reference, group, g, key)
                    value = taps[key][1]
                    if value.shape != expected.shape:
                        raise ValueError(f"tap {key!r} changed shape under {g}: {tuple(value.shape)} "
                                         f"vs {tuple(expected.shape)}")
                    chunk_taps[key].append(relative_error(value, expected).cpu())
            logit_parts.append(torch.stack(chunk_logits))
            for key, parts in chunk_taps.items():
                tap_parts.setdefault(key, []).append(torch.stack(parts))
    taps = {key: torch.cat(parts, dim=1) for key, parts in tap_parts.items()}
    return elements, torch.cat(logit_parts, dim=1), taps


def _summarise_invariance(elements: tuple[GroupElement, ...], errors: torch.Tensor, group: Group) -> dict:
    per_image = errors.max(dim=0).values  # worst element for each image
    return {
        "group": group.name,
        "max": float(per_image.max()),
        "mean": float(per_image.mean()),
        "per_element": {
            str(g): {"max": float(errors[e].max()), "mean": float(errors[e].mean())} for e, g in enumerate(elements)
        },
    }


def exact_errors(model: nn.Module, x: torch.Tensor, group: str | Group | None = None, batch_size: int = 32) -> dict:
    """:func:`invariance_error` and :func:`layer_equivariance_errors` from one pass over the orbit:
    ``{"invariance_error": ..., "layer_equivariance": ...}``."""
    group = _resolve_group(model, group)
    elements, logit_errors, tap_errors = _orbit_errors(model, x, group, batch_size)
    return {
        "invariance_error": _summarise_invariance(elements, logit_errors, group),
        "layer_equivariance": {key: float(errors.max()) for key, errors in tap_errors.items()},
    }


def invariance_error(model: nn.Module, x: torch.Tensor, group: str | Group | None = None, batch_size: int = 32) -> dict:
    """Exact in-group invariance error of the logits.

    For each image ``err = max_g |f(g x) - f(x)| / |f(x)|`` over the exact non-identity elements
    ``g`` of ``group`` (default: the model's group, else C4), norms over the logits ``[classes]``.
    Returns ``{"group": name, "max": max over images, "mean": mean over images,
    "per_element": {str(g): {"max", "mean"}}}``, all floats."""
    return exact_errors(model, x, group, batch_size)["invariance_error"]


def layer_equivariance_errors(model: nn.Module, x: torch.Tensor, group: str | Group | None = None,
                              batch_size: int = 32) -> dict[str, float]:
    """Equivariance error of every tap, max over the exact non-identity elements and the images.

    Keys (group taps, then map taps, then the features): a group tap's name -> ``|F(g x) - rho(g) F(x)| / |F(x)|`` with
    ``rho`` from :func:`eqlens.groups.act_on_group_channels` (the tap's ``|G|`` must be ``group``'s
    order); ``"<map tap name> (plain rotation)"`` -> ``|F(g x) - g F(x)| / |F(x)|``, the map only
    turned (right for maps of invariant channels, e.g. after group pooling); ``"features
    (invariance)"`` -> ``|F(g x) - F(x)| / |F(x)|`` on the pre-logit features."""
    return exact_errors(model, x, group, batch_size)["layer_equivariance"]


# --------------------------------------------------------------------------- angles off the grid


def _angle_list(angles_deg: Iterable[float]) -> list[float]:
    angles = [float(a) for a in angles_deg]
    if not angles:
        raise ValueError("need at least one angle")
    return angles


def predictions_over_angles(model: nn.Module, x: torch.Tensor, angles_deg: Iterable[float] = DEFAULT_ANGLES,
                            batch_size: int = 32, supersample: int = 4) -> torch.Tensor:
    """Class probabilities ``[A, B, classes]`` for ``x`` turned counter-clockwise by each angle.

    Multiples of 90 deg are exact pixel permutations; other angles are bilinear with
    ``supersample x supersample`` samples per pixel. Every copy, the upright one too, is cut to
    the disk inscribed in the frame, so all angles see the same pixels."""
    angles = _angle_list(angles_deg)
    parts = []
    with eval_mode(model), torch.no_grad():
        for chunk in _batches(model, x, batch_size):
            copies = [rotate(chunk, a, supersample=supersample, mask=True) for a in angles]
            parts.append(torch.stack([model(c).softmax(dim=-1).float().cpu() for c in copies]))
    return torch.cat(parts, dim=1)


def _accuracy_by_angle(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    y = torch.as_tensor(y).reshape(-1).long()
    if y.shape[0] != probs.shape[1]:
        raise ValueError(f"got {y.shape[0]} labels for {probs.shape[1]} images")
    return (probs.argmax(dim=-1) == y[None]).float().mean(dim=1)


def accuracy_over_angles(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                         angles_deg: Iterable[float] = DEFAULT_ANGLES, batch_size: int = 32,
                         supersample: int = 4) -> tuple[torch.Tensor, float]:
    """Accuracy at each angle ``[A]`` (see :func:`predictions_over_angles`) and the worst of them."""
    accuracy = _accuracy_by_angle(predictions_over_angles(model, x, angles_deg, batch_size, supersample), y)
    return accuracy, float(accuracy.min())


def _with_upright(angles: list[float]) -> tuple[list[float], int]:
    """The angles with 0 deg added if missing, and the index of the upright copy."""
    for i, a in enumerate(angles):
        if a % 360 == 0:
            return angles, i
    return [*angles, 0.0], len(angles)


def _consistency(probs: torch.Tensor, upright: int) -> float:
    predicted = probs.argmax(dim=-1)  # [A, B]
    others = [a for a in range(predicted.shape[0]) if a != upright]
    if not others:
        raise ValueError("orbit consistency needs at least one angle besides 0 deg")
    return float((predicted[others] == predicted[upright][None]).float().mean())


def orbit_consistency(model: nn.Module, x: torch.Tensor, angles_deg: Iterable[float] = DEFAULT_ANGLES,
                      batch_size: int = 32, supersample: int = 4) -> float:
    """Share of the rotated copies (every angle but 0 deg, over all images) whose predicted class is
    that of the upright (masked, 0 deg) copy. Needs no labels: 1.0 for an invariant model."""
    angles, upright = _with_upright(_angle_list(angles_deg))
    return _consistency(predictions_over_angles(model, x, angles, batch_size, supersample), upright)


def logit_std_8x45(model: nn.Module, x: torch.Tensor, logit_index: int = 0,
                   batch_size: int = 32) -> tuple[float, torch.Tensor]:
    """The EqCvT project's figure: sample std (n - 1) of logit ``logit_index`` over 8 rotations by 45 deg.

    Rotated as PIL's ``Image.rotate(angle, BILINEAR)`` does it: about the centre, bilinear with
    no supersampling, zeros outside the frame, exact transposes at 90/180/270 deg, no mask.
    Returns (mean over images, per-image values ``[B]``). It mixes exact and resampled angles and
    scales with the size of the logits, so it is a comparison figure, not a test of invariance."""
    values = []
    with eval_mode(model), torch.no_grad():
        for chunk in _batches(model, x, batch_size):
            logits = torch.stack([model(rotate(chunk, a, supersample=1, mask=False))[:, logit_index]
                                  for a in ANGLES_8X45])  # [8, b]
            values.append(logits.double().std(dim=0).cpu())
    per_image = torch.cat(values)
    return float(per_image.mean()), per_image


# --------------------------------------------------------------------------- everything at once


def robustness_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, group: str | Group | None = None,
                      angles: Iterable[float] = DEFAULT_ANGLES, batch_size: int = 32, supersample: int = 4,
                      logit_index: int = 0) -> dict:
    """Every measure of this module for images ``x: [B, C, S, S]`` with labels ``y: [B]``.

    Stable keys (all values plain floats, strings, lists or dicts of them; ``json.dumps`` works):

    - ``group``: the probe group of the exact measures (the model's own; a plain model, which has none,
      is probed with C4's quarter turns unless told otherwise); ``num_images``: B;
    - ``invariance_error``: as :func:`invariance_error` (``max``, ``mean``, ``per_element``);
    - ``layer_equivariance``: as :func:`layer_equivariance_errors` (tap key -> max error);
    - ``angles_deg``: the angles; ``accuracy_by_angle``: accuracy at each of them (same order);
    - ``worst_angle_accuracy``: the lowest of those;
    - ``orbit_consistency``: as :func:`orbit_consistency` over the same angles (None if only 0 deg);
    - ``logit_std_8x45``: mean over images of :func:`logit_std_8x45`, ``logit_std_8x45_per_image``.
    """
    group = _resolve_group(model, group)
    exact = exact_errors(model, x, group, batch_size)
    requested = _angle_list(angles)
    all_angles, upright = _with_upright(requested)
    probs = predictions_over_angles(model, x, all_angles, batch_size, supersample)
    accuracy = _accuracy_by_angle(probs[: len(requested)], y)
    std_mean, std_per_image = logit_std_8x45(model, x, logit_index, batch_size)
    return {
        "group": group.name,
        "num_images": int(x.shape[0]),
        **exact,
        "angles_deg": requested,
        "accuracy_by_angle": [float(a) for a in accuracy],
        "worst_angle_accuracy": float(accuracy.min()),
        "orbit_consistency": _consistency(probs, upright) if len(all_angles) > 1 else None,
        "logit_std_8x45": std_mean,
        "logit_std_8x45_per_image": [float(s) for s in std_per_image],
    }
