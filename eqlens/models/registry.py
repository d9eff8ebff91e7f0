"""The one registry of models: every name the CLI, the trainer, the checkpoints and the app use.

    model = eqlens.models.create("eqcvt_inv", num_classes=3, group="C4", image_size=129)

A builder registers itself with :func:`register`; :func:`create` validates the arguments, builds
the model and stores ``model.build_config``: plain data that rebuilds the same model, with every
hyper-parameter of the builder stated (the defaults of the day filled in), not only those passed.
A model built for a symmetry group (``spec.uses_group``) records its ``"group"``; a plain model has
none, so its build config has no ``"group"`` key (and its builder is handed ``group=None``).

Before building, :func:`create` prices the configuration with the model's cost function
(:mod:`eqlens.models.cost`: parameters and activation memory from the hyper-parameters alone) and refuses
one over the budget, so no build config, however it was written, allocates more than the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..groups import DEFAULT_GROUP, Group, get_group
from .cost import ModelCost, short_repr
from .inspection import LensModel


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of a model before building it."""

    name: str
    builder: Callable[..., LensModel]
    cost: Callable[..., ModelCost]  # the builder's signature; prices a configuration without building it
    description: str
    uses_group: bool  # built for a symmetry group (the ``group`` argument matters; else it is not recorded)
    invariant: bool  # logits exactly invariant under the group's exact elements
    odd_size_for_exactness: bool = False  # exact invariance needs odd H and W
    min_image_size: int = 16
    # build config -> the turns (deg) the model averages its probabilities over; None: one view, always
    averaged_turns: Callable[[dict], list[float]] | None = None


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, *, cost: Callable[..., ModelCost], description: str, uses_group: bool, invariant: bool,
             odd_size_for_exactness: bool = False, min_image_size: int = 16,
             averaged_turns: Callable[[dict], list[float]] | None = None):
    """Decorator: ``builder(num_classes, group, image_size, **kw) -> LensModel`` (``group``: a
    :class:`~eqlens.groups.Group`, None for a model registered with ``uses_group=False``); ``cost``: a
    function with the builder's signature returning its :class:`~eqlens.models.cost.ModelCost`."""

    def decorate(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, builder, cost, description, uses_group, invariant,
                                    odd_size_for_exactness, min_image_size, averaged_turns)
        return builder

    return decorate


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registered model, or of the model a named variant builds."""
    from .variants import is_variant, variant

    if is_variant(name):
        name = variant(name).model
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}")
    return _REGISTRY[name]


def averaged_turns(build_config: dict) -> list[float]:
    """The turns (deg) a built model averages its class probabilities over, ``[0.0, 22.5, 45.0, 67.5]`` for
    the Model I flagship; ``[]`` for a model that reads one view (every model but an orbit-averaged gcnn).
    The app and the card panel read this fact here, never a hyper-parameter by name."""
    name = build_config.get("name")
    if name not in _REGISTRY or _REGISTRY[name].averaged_turns is None:
        return []
    turns = _REGISTRY[name].averaged_turns(dict(build_config))
    return turns if len(turns) > 1 else []


def is_plain(name) -> bool:
    """Whether ``name`` is a registered model without a group (``uses_group=False``): it has none, whatever
    a run's config or an older card names (an unknown name: False, its records are taken as they are)."""
    return name in _REGISTRY and not _REGISTRY[name].uses_group


def create(name: str, num_classes: int = 3, group: str | None = None, image_size: int = 129, *,
           variant: str | None = None, **kwargs) -> LensModel:
    """Build model ``name`` for ``[B, 1, image_size, image_size]`` inputs and ``num_classes`` outputs.

    ``name``: a registered model or a named variant (:mod:`eqlens.models.variants`: every hyper-parameter
    and the group pinned); ``variant``: the variant a build config records (its settings are checked against
    ``kwargs``). ``group`` (default: the variant's, else :data:`~eqlens.groups.DEFAULT_GROUP`) matters only
    for a model built for one (``spec(name).uses_group``); a plain model ignores it (the name is still
    checked) and its ``build_config`` names no group.

    Raises ``ValueError`` for an unknown name or group, fewer than 1 class, an image size the model
    cannot take, a hyper-parameter of the wrong type or range, settings a named variant does not have, or a
    configuration over the budget of :mod:`eqlens.models.cost` (all before anything is built)."""
    from .variants import check_settings, resolve

    given = dict(kwargs)
    name, variant_group, variant, pinned = resolve(name, group, variant)
    kwargs = {**pinned, **kwargs}
    group = group or variant_group or DEFAULT_GROUP
    model_spec, group_obj = spec(name), get_group(group)
    own_group = {"group": group_obj.name} if model_spec.uses_group else {}
    check_cost(name, num_classes=num_classes, group=group, image_size=image_size, **kwargs)
    check_settings(variant, given)
    model = model_spec.builder(num_classes=int(num_classes), group=group_obj if own_group else None,
                               image_size=int(image_size), **kwargs)
    config = {
        "name": name,
        "num_classes": int(num_classes),
        **own_group,
        "image_size": int(image_size),
        **builder_defaults(model_spec.builder),
        **{k: _plain(v) for k, v in kwargs.items()},
    }
    # the variant it was built as, or the one its settings are (a variant's name is a fact, not an input)
    from .variants import matching_variant

    variant = variant or matching_variant(config)
    model.build_config = {"name": name, **({"variant": variant} if variant else {}),
                          **{k: v for k, v in config.items() if k != "name"}}
    return model


def _settings(model_spec: ModelSpec, num_classes, group: Group, image_size, kwargs: dict) -> dict:
    """The builder's arguments checked for names and the sizes every model shares; ``ValueError`` naming one."""
    from .cost import MAX_HYPER_PARAMETER, count

    known = builder_defaults(model_spec.builder)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(f"model {model_spec.name!r} has no hyper-parameter {', '.join(map(repr, unknown))} "
                         f"(it takes: {', '.join(known) or 'none'})")
    size = count("image_size", image_size, 1, MAX_HYPER_PARAMETER)
    if size < model_spec.min_image_size:
        raise ValueError(f"model {model_spec.name!r} cannot take {size}x{size} images: "
                         f"the smallest size it takes is {model_spec.min_image_size}")
    return {"num_classes": count("num_classes", num_classes), "group": group if model_spec.uses_group else None,
            "image_size": size, **known, **kwargs}


def estimate_cost(name: str, num_classes: int = 3, group: str | None = None, image_size: int = 129,
                  **kwargs) -> ModelCost:
    """The :class:`~eqlens.models.cost.ModelCost` of ``create(name, ...)`` with the same arguments, computed
    from them alone (nothing built). ``ValueError`` naming the field for an unknown name, group or
    hyper-parameter, or a value of the wrong type or range (an image size under the model's minimum
    included). A named variant (``name``, or ``variant=`` as a build config records it) supplies its settings;
    those given override them here (:func:`check_cost` then refuses a contradiction, after the budget)."""
    from .variants import resolve

    name, variant_group, _, pinned = resolve(name, group, kwargs.pop("variant", None))
    kwargs = {**pinned, **kwargs}
    model_spec = spec(name)
    group = group or variant_group or DEFAULT_GROUP
    return model_spec.cost(**_settings(model_spec, num_classes, get_group(group), image_size, kwargs))


def check_cost(name: str, num_classes: int = 3, group: str | None = None, image_size: int = 129,
               **kwargs) -> ModelCost:
    """:func:`estimate_cost`, refusing a configuration over the budget with a ``ValueError`` that says
    by how much and names the setting that puts it there (the one whose default would bring the cost
    down most); within the budget, refusing settings that contradict a named variant's."""
    from .variants import check_settings, resolve

    cost = estimate_cost(name, num_classes, group, image_size, **kwargs)
    reason = cost.over_budget()
    if reason is None:
        check_settings(resolve(name, group, kwargs.get("variant"))[2],
                       {k: v for k, v in kwargs.items() if k != "variant"})
        return cost
    culprit = _costliest_setting(name, cost, num_classes, group, image_size,
                                 {k: v for k, v in kwargs.items() if k != "variant"})
    named = f" (set by {culprit})" if culprit else ""
    raise ValueError(f"model {name!r} would take {reason}{named}: nothing was built; use smaller settings")


def _costliest_setting(name: str, cost: ModelCost, num_classes, group, image_size, kwargs: dict) -> str | None:
    """The setting (a hyper-parameter, or ``image_size`` / ``num_classes``) whose default lowers the cost most."""
    defaults = {**builder_defaults(spec(name).builder), "image_size": 129, "num_classes": 3}
    given = {**kwargs, "image_size": image_size, "num_classes": num_classes}
    best, best_cost = None, (cost.parameters, cost.activation_floats)
    for key, value in given.items():
        if key not in defaults or _plain(value) == defaults[key]:
            continue
        trial = {**given, key: defaults[key]}
        try:
            other = estimate_cost(name, group=group, **trial)
        except ValueError:
            continue
        if (other.parameters, other.activation_floats) < best_cost:
            best, best_cost = key, (other.parameters, other.activation_floats)
    return best if best is None else f"{best}={short_repr(_plain(given[best]))}"


def builder_defaults(builder: Callable[..., LensModel]) -> dict:
    """Every hyper-parameter of ``builder`` beyond ``num_classes, group, image_size`` with its default,
    as plain JSON data: what a build config records so that a checkpoint rebuilds the model it was
    trained as even after a default changes."""
    import inspect

    skip = {"num_classes", "group", "image_size"}
    return {name: _plain(p.default) for name, p in inspect.signature(builder).parameters.items()
            if name not in skip and p.default is not inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _plain(value):
    """Tuples (and nested ones) as lists: the JSON form a card stores, compared equal after a round trip."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def create_from_config(config: dict) -> LensModel:
    """Rebuild a model from its ``build_config`` (as stored in a checkpoint; a plain model's ``"group"``,
    which cards before issue 14 recorded, is ignored)."""
    config = dict(config)
    return create(config.pop("name"), **config)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
