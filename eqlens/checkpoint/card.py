"""The model card: what rebuilds, feeds and judges a model, read in one place.

A card is JSON on disk (``model_card.json``, and embedded in ``model.safetensors``); in memory it is a
:class:`ModelCard`, the one reader of that JSON: :meth:`ModelCard.from_json` checks every type and range
once (an uploaded card is untrusted) and fills in what older cards leave out, so nobody else looks
into the JSON or repeats a default.

    card = ModelCard.from_json(json.loads(text), "model_card.json")
    card.name, card.build_config, card.group, card.class_names   # "gcnn", {...}, "C4", ("axion", ...)
    card.probe_group                                              # "C4": what the robustness measures turn by
    card.input.image_size, card.input.crop, card.input.circular_mask
    probabilities = card.decode(model(card.prepare(raw_images)))  # [B, K]; regression: physical [B]

:func:`make_card` writes the JSON of a freshly trained model.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import torch

from .. import __version__
from ..core.jsonio import dumps, jsonable
from ..core.tasks import CLASSIFICATION, TASKS, TargetScaler, is_regression
from ..data.images import MAX_CLASSES
from ..data.transforms import MAX_CARD_IMAGE_SIZE, InputSpec
from ..errors import CheckpointError, DataError

FORMAT = "eqlens-checkpoint"
FORMAT_VERSION = 2
# A card's model input side above MAX_CARD_IMAGE_SIZE (data/transforms.py) is refused: the app's orbits and
# attributions grow with its square (800 px took the app from 0.9 to 2.7 GB). Training refuses larger sizes
# too, so every card it writes loads.
MAX_BUILD_CONFIG_CHARS = 20_000
# Every card training ever wrote states its mask, and training's default has always been the mask
# (TrainConfig.circular_mask): a card that says nothing was masked.
DEFAULT_CIRCULAR_MASK = True
_KNOWN_KEYS = ("format", "format_version", "eqlens_version", "created", "model", "group", "task", "class_names",
               "input", "data", "training", "metrics", "history")


def make_card(model, *, class_names, group: str, data: dict, training: dict, metrics: dict | None = None,
              history: list | None = None, input_spec: dict | None = None, task: dict | None = None) -> dict:
    """The model card: everything needed to rebuild, feed and judge the model, as plain data.

    ``task``: :func:`eqlens.core.tasks.task_record` (default: classification); a regression
    card's ``class_names`` is the one output's name. ``group`` is recorded only for a model built for
    one: a plain model's card says ``"group": null`` whatever is passed (:class:`ModelCard`)."""
    from ..models import count_parameters

    if getattr(model, "build_config", None) is None:
        raise CheckpointError("the model has no build_config: build it with eqlens.models.create")
    build, group = _without_plain_group(model.build_config, group)
    return jsonable({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "eqlens_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": model.build_config["name"], "build_config": build,
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


def _without_plain_group(build: Mapping, group) -> tuple[dict, str | None]:
    """``(build_config, group)`` of a card, a plain model's group dropped from both: a model registered
    with ``uses_group=False`` has none (cards before issue 14 said ``"C4"`` for it: read leniently, so
    old checkpoints keep loading). A model this eqlens does not know keeps what its card says."""
    from ..models import is_plain

    if is_plain(build.get("name")):
        return {k: v for k, v in build.items() if k != "group"}, None
    return dict(build), group


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
    _check_cost(build, source)


def _check_cost(build: Mapping, source: str) -> None:
    """A registered model's hyper-parameters, types, ranges and cost (parameters and activation memory,
    :mod:`eqlens.models.cost`), priced from the card alone: a card over the budget is refused here, before
    anyone builds its model. A model this eqlens does not know is left to :func:`build_model` to refuse."""
    from ..models import names
    from ..models.registry import check_cost

    if build["name"] not in names():
        return
    settings = {k: v for k, v in build.items() if k != "name"}
    try:
        check_cost(build["name"], **settings)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{source}: model.build_config: {err}") from None


def _validate_input(card: Mapping, build: Mapping, source: str) -> InputSpec:
    """The card's ``input`` record as an :class:`InputSpec` (a card without it: the build size, no crop,
    :data:`DEFAULT_CIRCULAR_MASK`)."""
    record = card.get("input")
    if record is None:
        record = {}
    if isinstance(record, Mapping) and "circular_mask" not in record:
        record = {**record, "circular_mask": DEFAULT_CIRCULAR_MASK}
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
    return spec




def _validate_task(card: Mapping, names: list, source: str) -> tuple[str, TargetScaler | None, dict]:
    """``(task, scaler, record)`` of a card (scaler None for classification; cards older than tasks are
    classification), the record complete (a regression's ``target`` and ``unit``)."""
    record = card.get("task") or {"name": CLASSIFICATION}
    task = record.get("name") if isinstance(record, Mapping) else None
    if task not in TASKS:
        raise CheckpointError(f"{source}: unknown task {task!r} in the model card (known: {', '.join(TASKS)})")
    if not is_regression(task):
        return task, None, {**record, "name": task}
    try:
        scaler = TargetScaler.from_dict(record["normalisation"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: the {task} model card has no valid target normalisation ({err})") from None
    if len(names) != 1:
        raise CheckpointError(f"{source}: a {task} model has one output, the card names {len(names)}")
    from ..data.regression import get_target

    target = get_target(task)
    return task, scaler, {"target": target.name, "unit": target.unit, **record, "normalisation": scaler.to_dict()}


def _validate(card, source: str) -> None:
    """Raise :class:`CheckpointError` saying why ``card`` is not one of ours: format, ``model.build_config``
    (name, ``num_classes`` in [1, MAX_CLASSES], group, ``image_size`` in [1, MAX_CARD_IMAGE_SIZE]),
    ``class_names``, ``group``, and the container types of ``training``, ``metrics``, ``history`` and
    ``data`` (``input`` and ``task``: :func:`_validate_input`, :func:`_validate_task`)."""
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
    for key in ("eqlens_version", "created"):
        if card.get(key) is not None and not isinstance(card[key], str):
            raise CheckpointError(f"{source}: the card's {key} must be text, got {_short(card[key])}")
    parameters = card["model"].get("parameters")
    if parameters is not None and not (_is_int(parameters) and parameters >= 0):
        raise CheckpointError(f"{source}: model.parameters must be a count, got {_short(parameters)}")
    if card.get("data") and card["data"].get("simulation_config") is not None:
        from ..data.splits import data_simulation_config

        try:
            data_simulation_config(card["data"])
        except DataError as err:
            raise CheckpointError(f"{source}: the card's data: {err}") from None


def migrate(card: Mapping, version: int, source: str = "checkpoint") -> dict:
    """A validated card's JSON of format ``version`` as format :data:`FORMAT_VERSION` states it: the one place
    where what an older card leaves out is filled in (a copy; the input is not changed).

    1 -> 2: a plain model's group is dropped (cards before issue 14 said "C4" for it: a plain model has none,
    and its build config no ``"group"``); a simulated ``data`` record states its ``simulation_config`` (a
    record without one was rendered with the config of its name as that name drew then: the closed-form
    line vortex, :func:`eqlens.data.splits.recorded_simulation_config`); the build config names the variant
    its settings are (:func:`eqlens.models.matching_variant`), if any."""
    from ..data.splits import data_simulation_config
    from ..models import matching_variant

    card = copy.deepcopy(dict(card))
    if version < 2:
        model = dict(card["model"])
        build, group = _without_plain_group(model["build_config"], card.get("group"))
        named = matching_variant(build) if "variant" not in build else None
        model["build_config"] = {"name": build["name"], **({"variant": named} if named else {}),
                                 **{k: v for k, v in build.items() if k != "name"}}
        card["model"], card["group"] = model, group
        data = card.get("data")
        if isinstance(data, Mapping) and data.get("simulation_config") is None:
            try:
                config = data_simulation_config(data)
            except DataError as err:
                raise CheckpointError(f"{source}: the card's data: {err}") from None
            if config is not None:
                card["data"] = {**data, "simulation_config": config.to_dict()}
        card["format_version"] = 2
    return card


def _plain(value):
    """A deep copy as plain JSON containers: a card never shares a mutable object with its source."""
    return copy.deepcopy(jsonable(value))


@dataclass(frozen=True, eq=False)
class ModelCard:
    """A checkpoint's model card, validated (:meth:`from_json`) and typed; the one reader of card JSON.

    ``name``, ``build_config`` (what :func:`eqlens.models.create_from_config` rebuilds the model from),
    ``parameters``; ``group``: the symmetry group the model is built for. The rule for a plain model
    (registered with ``uses_group=False``): it has no group, so its card says ``"group": null`` and its
    ``build_config`` has no ``"group"`` key; a card that names one anyway (every card written before
    issue 14 said ``"C4"``) is read with that group dropped, and :meth:`to_json` writes it without.
    A group model's card names its group (older cards may leave the top level null: then None).
    :attr:`probe_group` is the group the robustness measures turn by, which a plain model has too;
    ``class_names``: the outputs' names (a regression card: its one output); ``input``: how the model
    takes images (:class:`eqlens.data.transforms.InputSpec`); ``task`` and ``scaler`` (None for
    classification) with ``task_record`` (the ``task`` JSON: target, unit, normalisation); ``data``,
    ``training``, ``metrics``, ``history``: the run's records as JSON containers (read them, do not
    change them: :meth:`replace` makes a changed card, validated); ``extra`` (and ``model_extra``,
    ``input_extra``): keys this eqlens does not know, kept so :meth:`to_json` round-trips. Cards compare
    by identity (and hash so); compare their :meth:`to_json` for equal content."""

    name: str
    build_config: dict
    group: str | None
    class_names: tuple[str, ...]
    input: InputSpec
    task: str = CLASSIFICATION
    scaler: TargetScaler | None = None
    task_record: dict = field(default_factory=lambda: {"name": CLASSIFICATION})
    data: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: tuple = ()
    parameters: int | None = None
    format_version: int = FORMAT_VERSION
    eqlens_version: str | None = None
    created: str | None = None
    model_extra: dict = field(default_factory=dict)
    input_extra: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, card: Any, source: str = "checkpoint") -> ModelCard:
        """The card of the JSON object ``card``; :class:`CheckpointError` saying why when it is not one of
        ours or a field has the wrong type or range (``source`` names it in the message)."""
        if isinstance(card, ModelCard):
            return card
        _validate(card, source)
        card = migrate(card, card["format_version"], source)
        build, group = _without_plain_group(card["model"]["build_config"], card.get("group"))
        spec = _validate_input(card, build, source)
        names = list(card["class_names"])
        task, scaler, task_record = _validate_task(card, names, source)
        model = card["model"]
        record = card.get("input") if isinstance(card.get("input"), Mapping) else {}
        return cls(
            name=build["name"], build_config=_plain(build), group=group,
            class_names=tuple(names), input=spec, task=task, scaler=scaler, task_record=_plain(task_record),
            data=_plain(dict(card.get("data") or {})), training=_plain(dict(card.get("training") or {})),
            metrics=_plain(dict(card.get("metrics") or {})), history=tuple(_plain(list(card.get("history") or []))),
            parameters=model.get("parameters"), format_version=card["format_version"],
            eqlens_version=card.get("eqlens_version"), created=card.get("created"),
            model_extra=_plain({k: v for k, v in model.items() if k not in ("name", "build_config", "parameters")}),
            input_extra=_plain({k: v for k, v in record.items() if k not in spec.to_record()}),
            extra=_plain({k: v for k, v in card.items() if k not in _KNOWN_KEYS}),
        )

    def to_json(self) -> dict:
        """The card as JSON (a fresh copy): ``ModelCard.from_json(card.to_json())`` is ``card`` again, and
        for a card read from JSON it is that JSON with the defaults filled in (``input``, ``task``) and a
        plain model's group dropped."""
        model = {"name": self.name, "build_config": self.build_config}
        if self.parameters is not None:
            model["parameters"] = self.parameters
        record = {"format": FORMAT, "format_version": self.format_version}
        record |= {k: v for k, v in (("eqlens_version", self.eqlens_version), ("created", self.created))
                   if v is not None}
        record |= {
            "model": {**self.model_extra, **model},
            "group": self.group,
            "task": self.task_record,
            "class_names": list(self.class_names),
            "input": {**self.input_extra, **self.input.to_record()},
            "data": self.data,
            "training": self.training,
            "metrics": self.metrics,
            "history": list(self.history),
            **self.extra,
        }
        return _plain(record)

    def replace(self, **changes) -> ModelCard:
        """A changed copy, validated again (e.g. ``card.replace(metrics={**card.metrics, "test": report})``)."""
        return ModelCard.from_json(dataclasses.replace(self, **changes).to_json(), self.name)

    # ------------------------------------------------------------ what the card says about the model

    @property
    def probe_group(self) -> str:
        """The group whose exact elements the robustness measures (invariance error, per-layer errors) turn
        the input by: the model's own group; for a plain model, which has none, the group its run
        trained with (``training.config.group``: its augmentation's), else
        :data:`eqlens.groups.DEFAULT_GROUP` (C4's quarter turns). A measurement, not the model's group."""
        from ..groups import DEFAULT_GROUP, get_group

        own = self.group or self.build_config.get("group")  # a plain model's build_config has none
        if isinstance(own, str):
            return own
        config = self.training.get("config")
        trained_with = config.get("group") if isinstance(config, Mapping) else None
        try:
            return get_group(trained_with).name if isinstance(trained_with, str) else DEFAULT_GROUP
        except ValueError:
            return DEFAULT_GROUP

    @property
    def train_config(self):
        """The run's settings (``training.config``) as a :class:`eqlens.core.run_config.TrainConfig`, with today's
        defaults for what an older record leaves out (e.g. ``augment``: on; ``model``: the card's); None
        for a card without a record, or with one this version cannot take (an unknown schedule, a value
        out of range): read a setting here, never from the JSON with a default of one's own."""
        from ..core.run_config import TrainConfig
        from ..errors import EqlensError

        config = self.training.get("config")
        if not isinstance(config, Mapping):
            return None
        try:
            return TrainConfig.from_dict({"model": self.name, **config})
        except (EqlensError, TypeError, ValueError):
            return None

    @property
    def num_outputs(self) -> int:
        return len(self.class_names)

    @property
    def is_regression(self) -> bool:
        return self.scaler is not None

    @property
    def unit(self) -> str | None:
        """The regression target's unit (e.g. ``"log10 eV"``), None for a classifier."""
        return self.task_record.get("unit") if self.is_regression else None

    @property
    def simulation_config(self):
        """The :class:`eqlens.simulation.SimulationConfig` the model's data was rendered with, None for data
        that is not simulated: ``data.simulation_config`` when the card records it, else the named config
        with the closed-form line vortex, the form a card without that record was rendered with
        (:func:`eqlens.data.splits.data_simulation_config`, the one owner of that rule)."""
        from ..data.splits import data_simulation_config

        return data_simulation_config(self.data)

    @property
    def complete(self) -> bool:
        """Whether the run finished every epoch it was asked for (cards before the flag, or null: yes)."""
        return self.training.get("complete") is not False

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """The model's input ``[B, 1, S, S]`` from raw or normalised images ``[B, H, W]`` / ``[B, 1, H, W]``:
        the native crop, resize, min-max and mask the model was trained with (:meth:`InputSpec.prepare`)."""
        return self.input.prepare(images)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Model outputs ``[B, K]`` -> class probabilities ``[B, K]`` (float32); a regression's ``[B, 1]`` ->
        physical values ``[B]`` (float64, the target's unit)."""
        if self.scaler is None:
            return outputs.float().softmax(dim=-1)
        return self.scaler.decode(outputs.reshape(-1))


def validate_card(card, source: str = "checkpoint") -> dict:
    """``card`` checked and completed (:meth:`ModelCard.from_json`), as JSON."""
    return ModelCard.from_json(card, source).to_json()
