"""The model card: what rebuilds, feeds and judges a model, as plain data, checked in one place.

:func:`make_card` writes it, :func:`validate_card` is the one place its types and ranges are checked
(an uploaded card is untrusted).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from numbers import Integral

from .. import __version__
from ..errors import CheckpointError, DataError
from ..training.jsonio import dumps, jsonable
from ..training.targets import card_task

FORMAT = "eqlens-checkpoint"
FORMAT_VERSION = 1
# A card's model input side above this is refused: the app's orbits and attributions grow with its square
# (800 px took the app from 0.9 to 2.7 GB). Training refuses larger sizes too, so every card it writes loads.
MAX_CARD_IMAGE_SIZE = 512
MAX_CLASSES = 1000
MAX_BUILD_CONFIG_CHARS = 20_000


def make_card(model, *, class_names, group: str, data: dict, training: dict, metrics: dict | None = None,
              history: list | None = None, input_spec: dict | None = None, task: dict | None = None) -> dict:
    """The model card: everything needed to rebuild, feed and judge the model, as plain data.

    ``task``: :func:`eqlens.training.targets.task_record` (default: classification); a regression
    card's ``class_names`` is the one output's name."""
    from ..models import count_parameters

    if getattr(model, "build_config", None) is None:
        raise CheckpointError("the model has no build_config: build it with eqlens.models.create")
    return jsonable({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "eqlens_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": model.build_config["name"], "build_config": dict(model.build_config),
                  "parameters": count_parameters(model)},
        "group": group,
        "task": task or {"name": "classification"},
        "class_names": list(class_names),
        "input": input_spec or {},
        "data": data,
        "training": training,
        "metrics": metrics or {},
        "history": history or [],
    })


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_group(value, where: str, source: str) -> None:
    from ..groups import get_group

    if not isinstance(value, str) or len(value) > 8:
        raise CheckpointError(f"{source}: {where} must be a group name such as 'C4', got {_short(value)}")
    try:
        get_group(value)
    except ValueError as err:
        raise CheckpointError(f"{source}: {where}: {err}") from None


def _short(value) -> str:
    """``repr`` of a card value, cut short for messages (a card may hold anything)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validate_build(build: Mapping, source: str) -> None:
    """Types and ranges of ``model.build_config``: everything :func:`build_model` hands the builder."""
    name = build.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise CheckpointError(f"{source}: model card lacks model.build_config")
    if len(dumps(jsonable(dict(build)), indent=None)) > MAX_BUILD_CONFIG_CHARS:
        raise CheckpointError(f"{source}: model.build_config is longer than {MAX_BUILD_CONFIG_CHARS} characters")
    classes = build.get("num_classes")
    if classes is not None and not (_is_int(classes) and 1 <= classes <= MAX_CLASSES):
        raise CheckpointError(f"{source}: model.build_config.num_classes must be an integer in [1, {MAX_CLASSES}], "
                              f"got {_short(classes)}")
    if "group" in build:
        _check_group(build["group"], "model.build_config.group", source)
    size = build.get("image_size")
    if size is not None and not (_is_int(size) and 1 <= size <= MAX_CARD_IMAGE_SIZE):
        raise CheckpointError(f"{source}: model.build_config.image_size must be an integer in "
                              f"[1, {MAX_CARD_IMAGE_SIZE}], got {_short(size)}")


def _validate_input(card: Mapping, build: Mapping, source: str) -> dict:
    """The card's ``input`` record checked by :class:`InputSpec` (the one reader of it), returned complete
    (a card without it, older than the record: the build size, no crop, no mask)."""
    from ..data.transforms import InputSpec

    record = card.get("input")
    if record is None:
        record = {}
    try:
        spec = InputSpec.from_record(record, build.get("image_size"))
    except DataError as err:
        raise CheckpointError(f"{source}: model card: {err}") from None
    if spec.image_size > MAX_CARD_IMAGE_SIZE:
        raise CheckpointError(f"{source}: the model takes {spec.image_size} px images; eqlens reads cards up to "
                              f"{MAX_CARD_IMAGE_SIZE} px")
    if build.get("image_size") is not None and build["image_size"] != spec.image_size:
        raise CheckpointError(f"{source}: input.image_size {spec.image_size} differs from the model's "
                              f"build_config.image_size {build['image_size']}")
    return {**record, **spec.to_record()}


def validate_card(card, source: str = "checkpoint") -> dict:
    """Return ``card`` if it is one of ours, else raise :class:`CheckpointError` saying why.

    The one place a card's types and ranges are checked (an uploaded card is untrusted): format,
    ``model.build_config`` (name, ``num_classes`` in [1, MAX_CLASSES], group, ``image_size`` in
    [1, MAX_CARD_IMAGE_SIZE]), ``class_names``, ``group``, ``task`` and ``input`` (through
    :class:`eqlens.data.transforms.InputSpec`; returned complete, so readers need no defaults), and the
    container types of ``training``, ``metrics``, ``history`` and ``data``."""
    if not isinstance(card, Mapping) or card.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not an eqlens checkpoint (no '{FORMAT}' model card)")
    version = card.get("format_version")
    if not _is_int(version) or version < 1:
        raise CheckpointError(f"{source}: model card has no valid format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{source}: format version {version} is newer than this eqlens reads "
                              f"({FORMAT_VERSION}); upgrade eqlens")
    build = card.get("model", {}).get("build_config") if isinstance(card.get("model"), Mapping) else None
    if not isinstance(build, Mapping) or not isinstance(build.get("name"), str):
        raise CheckpointError(f"{source}: model card lacks model.build_config")
    _validate_build(build, source)
    names = card.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise CheckpointError(f"{source}: model card lacks class_names")
    if len(names) > MAX_CLASSES or any(len(n) > 200 for n in names):
        raise CheckpointError(f"{source}: model card has more than {MAX_CLASSES} class names or one over 200 "
                              f"characters")
    if build.get("num_classes", len(names)) != len(names):
        raise CheckpointError(f"{source}: {len(names)} class names for a {build.get('num_classes')}-class model")
    if card.get("group") is not None:
        _check_group(card["group"], "group", source)
    for key, kind in (("training", Mapping), ("metrics", Mapping), ("data", Mapping), ("history", list)):
        if card.get(key) is not None and not isinstance(card[key], kind):
            raise CheckpointError(f"{source}: the card's {key} must be a {'list' if kind is list else 'mapping'}, "
                                  f"got {type(card[key]).__name__}")
    complete = (card.get("training") or {}).get("complete")
    if complete is not None and not isinstance(complete, bool):
        raise CheckpointError(f"{source}: training.complete must be true or false, got {_short(complete)}")
    task, scaler = card_task(card, source)
    if scaler is not None and len(names) != 1:
        raise CheckpointError(f"{source}: a {task} model has one output, the card names {len(names)}")
    return {**card, "input": _validate_input(card, build, source)}
