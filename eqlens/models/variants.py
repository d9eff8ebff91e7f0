"""Named variants, timm-style: a registered name that pins every hyper-parameter of one architecture.

    model = eqlens.models.create("gcnn_ring_orbit4_c4", num_classes=3, image_size=81)   # the Model I flagship
    variant("gcnn_ring_orbit4_c4").settings   # {"widths": [8, 16, 32, 48], ..., "orbit_turns": 4}

A variant names a model of the registry, its group (None for a plain model) and *every* hyper-parameter
(the builder's defaults filled in when it is registered, so a later default change cannot alter it). The
number of classes and the input size stay free: they are the task's and the data's, not the architecture's.
:func:`eqlens.models.create` accepts a variant's name wherever it accepts a model's; the build config of a
model built from one records ``"variant"`` beside ``"name"`` (the registered model), and rebuilding it checks
that the recorded settings are still the variant's (a card claiming a variant it does not match is refused).
Every shipped checkpoint is built from a variant (tests/models/test_variants.py checks each card).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import _plain, builder_defaults, spec

_VARIANTS: dict[str, Variant] = {}


@dataclass(frozen=True)
class Variant:
    """``name``; ``model`` (a registered model); ``group`` (its symmetry group, None for a plain model);
    ``settings``: every hyper-parameter of the model's builder, as plain JSON data; ``description``."""

    name: str
    model: str
    group: str | None
    settings: dict = field(default_factory=dict)
    description: str = ""


def register_variant(name: str, model: str, *, group: str | None = None, description: str, **settings) -> Variant:
    """Register ``name`` as ``model`` with ``settings`` (the rest: the builder's defaults, pinned now)."""
    model_spec = spec(model)
    if name in _VARIANTS or name == model:
        raise ValueError(f"variant {name!r} registered twice (or under its model's own name)")
    if model_spec.uses_group != (group is not None):
        raise ValueError(f"variant {name!r}: a {'group' if model_spec.uses_group else 'plain'} model "
                         f"{'needs' if model_spec.uses_group else 'has no'} group")
    defaults = builder_defaults(model_spec.builder)
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(f"variant {name!r}: {model} has no hyper-parameter {unknown}")
    pinned = {**defaults, **{k: _plain(v) for k, v in settings.items()}}
    _VARIANTS[name] = Variant(name, model, group, pinned, description)
    return _VARIANTS[name]


def variant(name: str) -> Variant:
    if name not in _VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known variants: {', '.join(variant_names())}")
    return _VARIANTS[name]


def is_variant(name) -> bool:
    return isinstance(name, str) and name in _VARIANTS


def variant_names() -> list[str]:
    """Registered variant names, in registration order (each architecture's family together)."""
    return list(_VARIANTS)


def matching_variant(build_config: dict) -> str | None:
    """The variant whose model, group and settings a build config has (None when none does): what a card
    written before variants existed was built as."""
    settings = {k: v for k, v in build_config.items() if k not in ("name", "num_classes", "group", "image_size",
                                                                      "variant")}
    for candidate in _VARIANTS.values():
        if (candidate.model == build_config.get("name") and candidate.group == build_config.get("group")
                and candidate.settings == _plain(settings)):
            return candidate.name
    return None


def resolve(name: str, group: str | None, variant_name: str | None) -> tuple[str, str | None, str | None, dict]:
    """``(model, group, variant, its settings)`` for :func:`create`: ``name`` a model or a variant,
    ``variant_name`` a variant recorded in a build config (settings ``{}`` without one). ``ValueError`` when the
    two disagree, or the group is not the variant's."""
    if is_variant(name):
        if variant_name not in (None, name):
            raise ValueError(f"create({name!r}) with variant {variant_name!r}: name one")
        variant_name = name
    if variant_name is None:
        return name, group, None, {}
    chosen = variant(variant_name)
    if not is_variant(name) and name != chosen.model:
        raise ValueError(f"variant {variant_name!r} is a {chosen.model!r}, not a {name!r}")
    if chosen.group is not None and group is not None and group != chosen.group:
        raise ValueError(f"variant {variant_name!r} is built for {chosen.group}, not {group}")
    return chosen.model, chosen.group, variant_name, dict(chosen.settings)


def check_settings(variant_name: str | None, given: dict) -> None:
    """``ValueError`` naming the first setting in ``given`` that the variant pins to another value."""
    if variant_name is None:
        return
    pinned = variant(variant_name).settings
    for key, value in given.items():
        if key in pinned and _plain(value) != pinned[key]:
            raise ValueError(f"variant {variant_name!r} pins {key} = {pinned[key]!r}, got {_plain(value)!r}: "
                             f"build {variant(variant_name).model!r} with that setting instead of the variant")


# ---- the shipped architectures ---------------------------------------------------------------------

register_variant("gcnn_c4", "gcnn", group="C4",
                 description="gcnn C4 at its defaults (widths 16-24-32-32, pooled lifting, global mean)")
register_variant("gcnn_s2_c4", "gcnn", group="C4", widths=[8, 16, 32, 48], lift_stride=2,
                 description="the 81 px crop gcnn: widths 8-16-32-48, a stride-2 lifting layer, global mean (82k)")
register_variant("gcnn_ring_c4", "gcnn", group="C4", widths=[8, 16, 32, 48], lift_stride=2, radial_bins=6,
                 description="gcnn_s2_c4 with ring means (6 radial bins): one view (97k)")
register_variant("gcnn_ring_orbit4_c4", "gcnn", group="C4", widths=[8, 16, 32, 48], lift_stride=2, radial_bins=6,
                 orbit_turns=4,
                 description="the Model I flagship: gcnn_ring_c4 with its probabilities averaged over 4 turns")
register_variant("cnn_base", "cnn", description="the plain CNN (widths 16-32-64-96): the flagship's twin")
register_variant("cvt_base", "cvt", description="the Convolutional Vision Transformer baseline")
register_variant("eqcvt_c4", "eqcvt", group="C4", description="EqCvT: escnn C4 steerable block in front of a CvT")
register_variant("eqcvt_inv_c4", "eqcvt_inv", group="C4", description="EqCvT with invariant tokens")
register_variant("gsa_c4", "gsa", group="C4", description="GSA-Net: group-equivariant self-attention, C4")
register_variant("vit_base", "vit", description="a small ViT (patch 8, dim 48, depth 4)")
register_variant("resnet18_base", "resnet18", description="ResNet-18")
