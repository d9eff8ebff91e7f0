"""The model-card panel: what a checkpoint is, in its card's own words (input, data, test metrics,
which layers are equivariant, group, size, training). Pages call :func:`card_panel`; everything it
prints comes from :func:`card_facts`, the one place here that reads the card's fields (no st.* there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import streamlit as st

from app import markup
from app.catalog import LoadedModel

# A layer counts as equivariant when its relative error at the group's exact elements (the card's
# ``layer_equivariance``, measured at training time) is float rounding, not a learned approximation.
EQUIVARIANT_BELOW = 1e-4
INVARIANCE_TAP = "features (invariance)"
PLAIN_SUFFIX = " (plain rotation)"


@dataclass(frozen=True)
class CardFacts:
    """The card's fields the pages print, as plain values (None: the card does not say)."""

    model: str | None
    group: str | None
    parameters: int | None
    class_names: tuple[str, ...]
    image_size: int | None
    crop: int | None
    circular_mask: bool
    data_kind: str | None
    data_spec: str | None  # the spec that renders its data today (model_i_line for a model_i card before 12-02)
    data_seed: int | None
    split_sizes: dict = field(default_factory=dict)
    fresh_data: bool = False
    test: dict = field(default_factory=dict)  # n, accuracy, auc_macro (or a regression's rmse, r2)
    layer_errors: dict = field(default_factory=dict)  # tap -> relative error at the exact group elements
    # The group those errors turn by: the model's own; a plain model has none and is probed with C4's quarter turns.
    probe_group: str | None = None
    robustness_images: int | None = None
    invariance_error: float | None = None
    images_seen: int | None = None
    images_seen_exact: bool = True  # False: epochs x train size, the card has no count
    wall_time_s: float | None = None
    wall_clock: bool = True  # False: the card records only the time spent in training steps
    complete: bool = True
    epochs_done: int | None = None
    epochs: int | None = None
    task: str = "classification"
    augment_mode: str | None = None  # "scene": turned renderings; "image": resampled pictures; "mixed": both
    averaged_turns: tuple[float, ...] = ()  # the turns (deg) the probabilities are averaged over; (): one view
    derived: bool = False  # the weights of another checkpoint, orbit averaging added without training


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


_ROTATIONS_SEEN = {"scene": "rotations seen as turned renderings (scene augmentation)",
                   "image": "rotations seen as resampled pictures (image augmentation)",
                   "mixed": "rotations seen as turned renderings, half of them also resampled (mixed augmentation)"}


def learnt_from_renderings(loaded) -> bool:
    """Whether a loaded model's card says it saw its rotations as turned renderings (scene augmentation),
    never as resampled pictures: the pages show such a model the turned sky first, the view it was trained for."""
    facts = card_facts(loaded.card) if loaded is not None and loaded.trained else None
    return facts is not None and facts.augment_mode == "scene"


def card_facts(card) -> CardFacts | None:
    """The facts of a checkpoint's card (a typed ``eqlens.checkpoint.ModelCard``, or its JSON, validated
    here); None without a card or for one that is not valid."""
    from eqlens.checkpoint import ModelCard
    from eqlens.data.splits import data_spec_now
    from eqlens.errors import EqlensError
    from eqlens.models import averaged_turns

    if card is None:
        return None
    try:
        card = ModelCard.from_json(card)  # a ModelCard is returned as it is
    except (EqlensError, TypeError, ValueError, KeyError):
        return None
    data, training = _dict(card.data), _dict(card.training)
    config = card.train_config  # TrainConfig or None: one reading of the run's settings, with today's defaults
    test = _dict(_dict(card.metrics).get("test"))
    robust = _dict(test.get("robustness"))
    seen, exact = _int(training.get("images_seen")), True
    if seen is None and _int(training.get("epochs_done")) is not None:
        per_epoch = None if config is None else (
            config.steps_per_epoch * config.batch_size if config.steps_per_epoch else config.train_size)
        seen, exact = (training["epochs_done"] * per_epoch, False) if per_epoch else (None, True)
    wall = _number(training.get("wall_time_s"))
    return CardFacts(
        model=card.name,
        group=card.group,
        parameters=_int(card.parameters),
        class_names=tuple(card.class_names),
        image_size=card.input.image_size,
        crop=card.input.crop,
        circular_mask=bool(card.input.circular_mask),
        data_kind=data.get("kind"),
        data_spec=data_spec_now(data),
        data_seed=_int(data.get("data_seed")),
        split_sizes=_dict(data.get("sizes")),
        fresh_data=bool(data.get("fresh_data", False)),
        test={k: test[k] for k in ("n", "accuracy", "auc_macro", "rmse", "r2") if _number(test.get(k)) is not None},
        layer_errors={k: float(v) for k, v in _dict(robust.get("layer_equivariance")).items()
                      if _number(v) is not None},
        robustness_images=_int(robust.get("num_images")),
        probe_group=robust.get("group") if isinstance(robust.get("group"), str) else card.probe_group,
        invariance_error=_number(test.get("invariance_error")),
        images_seen=seen,
        images_seen_exact=exact,
        wall_time_s=wall if wall is not None else _number(training.get("train_time_s")),
        wall_clock=wall is not None,
        complete=card.complete,
        epochs_done=_int(training.get("epochs_done")),
        epochs=None if config is None else config.epochs,
        task=card.task,
        augment_mode=config.augment_mode if config is not None and config.augment else None,
        averaged_turns=tuple(averaged_turns(card.build_config)),
        derived=bool(_dict(training.get("derived_from"))),
    )


def _native_size(spec: str | None) -> int | None:
    """The side of the simulation's frame before crop and resize (None for a folder or an unknown spec)."""
    from eqlens.simulation import config_names, get_config

    return get_config(spec).image_size if spec in config_names() else None


def input_line(facts: CardFacts) -> str:
    native, size = _native_size(facts.data_spec), facts.image_size
    if facts.crop is not None:
        text = f"central {facts.crop}x{facts.crop} native px" + (f" of the {native} px frame" if native else "")
        text += f", resized to {size} px" if size != facts.crop else ", no resize"
    elif native is not None:
        text = f"whole {native} px frame" + (f", resized to {size} px" if size != native else ", no resize")
    else:
        text = f"resized to {size} px"
    text += "; per-image min-max to [0, 1]"
    return text + ("; circular mask" if facts.circular_mask else "")


def data_line(facts: CardFacts) -> str:
    source = markup.code(facts.data_spec)
    source = source if facts.data_kind != "simulated" else f"simulated {source}"
    if facts.data_seed is not None:
        source += f", data seed {facts.data_seed}"
    sizes = facts.split_sizes
    parts = [f"train {'fresh images every step' if sizes.get('train') == 'stream' else sizes.get('train')}"]
    parts += [f"{split} {sizes[split]}" for split in ("val", "test") if split in sizes]
    classes = markup.text(", ".join(facts.class_names))
    return source + (f" ({', '.join(parts)})" if sizes else "") + f"; classes {classes}"


def test_line(facts: CardFacts) -> str:
    test = facts.test
    if "accuracy" in test:
        text = f"accuracy **{test['accuracy']:.3f}**"
        if "auc_macro" in test:
            text += f", macro AUC **{test['auc_macro']:.4f}**"
    elif "rmse" in test:
        text = f"RMSE {test['rmse']:.4g}" + (f", R^2 {test['r2']:.3f}" if "r2" in test else "")
    else:
        return "no test metrics on the card"
    return text + (f" on its test split of {int(test['n'])} images" if "n" in test else " on its test split")


def _tap_name(tap: str) -> str:
    return tap.removesuffix(PLAIN_SUFFIX)


def equivariance_line(facts: CardFacts) -> str:
    """Which layers are equivariant, from the card's per-layer errors at the group's exact elements."""
    taps = {k: v for k, v in facts.layer_errors.items() if k != INVARIANCE_TAP}
    if not taps:
        return "not measured on the card"
    equivariant = [k for k, v in taps.items() if v < EQUIVARIANT_BELOW]
    broken = [k for k, v in taps.items() if v >= EQUIVARIANT_BELOW]
    names = list(taps)

    def listed(keys):
        return ", ".join(f"{markup.code(_tap_name(k))} {taps[k]:.1e}" for k in keys)

    if not broken:
        text = f"every layer ({listed(names)})"
    elif not equivariant:
        text = f"none (a plain model: {listed(names)})"
    elif names[:len(equivariant)] == equivariant and len(equivariant) == 1:
        text = f"**its first block only** ({listed(equivariant)}); not the layers after it ({listed(broken)})"
    elif names[:len(equivariant)] == equivariant:
        text = f"the first {len(equivariant)} layers ({listed(equivariant)}); not the rest ({listed(broken)})"
    else:
        text = f"{listed(equivariant)}; not {listed(broken)}"
    invariance = facts.layer_errors.get(INVARIANCE_TAP, facts.invariance_error)
    if invariance is not None:
        verdict = "invariant" if invariance < EQUIVARIANT_BELOW else "not invariant"
        text += f"; pooled features {verdict} ({invariance:.1e})"
    measured = f" on {facts.robustness_images} test images" if facts.robustness_images else ""
    if facts.group is None and facts.probe_group:  # a plain model: the turns are the probe's, not its own group's
        probe = markup.text(facts.probe_group)
        return text + f". Relative errors at the exact rotations of the probe group {probe}{measured}."
    return text + f". Relative errors at the group's exact rotations{measured}."


def equivariance_scope(facts: CardFacts | None) -> str | None:
    """A few words on where the model is equivariant (every layer, its first block only, no layer), for a
    caption beside an invariance error; None when the card does not measure it."""
    taps = {k: v for k, v in (facts.layer_errors if facts else {}).items() if k != INVARIANCE_TAP}
    if not taps:
        return None
    equivariant = [v < EQUIVARIANT_BELOW for v in taps.values()]
    if all(equivariant):
        return "equivariant in every layer (its card)"
    if not any(equivariant):
        return "no equivariant layer (its card)"
    if equivariant[0] and not any(equivariant[1:]):
        return "equivariant only in its first block (its card): the layers after it are not, so its outputs move"
    return f"equivariant in {sum(equivariant)} of its {len(taps)} measured layers (its card)"


def training_line(facts: CardFacts) -> str:
    parts = []
    if facts.images_seen is not None:
        estimate = "" if facts.images_seen_exact else " (epochs x training-set size)"
        parts.append(f"{facts.images_seen:,} images seen{estimate}")
    if facts.epochs_done is not None:
        parts.append(f"{facts.epochs_done} epochs" + (f" of {facts.epochs}" if facts.epochs else ""))
    if facts.wall_time_s is not None:
        parts.append(f"{_duration(facts.wall_time_s)} {'wall time' if facts.wall_clock else 'training time'}")
    if facts.augment_mode is not None:
        parts.append(_ROTATIONS_SEEN.get(facts.augment_mode, f"augmentation {markup.text(facts.augment_mode)}"))
    parts.append("complete" if facts.complete else "**partial** (stopped before its last epoch)")
    if facts.derived:
        parts.append("then the orbit average added to those weights, without training")
    return ", ".join(parts)


def orbit_text(facts: CardFacts) -> str:
    """How the model line names orbit averaging ('' for a model that reads one view)."""
    if not facts.averaged_turns:
        return ""
    turns = ", ".join(f"{angle:g}" for angle in facts.averaged_turns)
    return f", probabilities averaged over the picture turned by {turns} deg ({len(facts.averaged_turns)} forwards)"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def group_text(model: str | None, group: str | None) -> str:
    """How the panel names a model's group: a plain model (registered without one) has none."""
    from eqlens.models import is_plain

    if is_plain(model):
        return "no group (a plain model)"
    return f"group {markup.text(group) if group else 'not on the card'}"


def card_lines(facts: CardFacts) -> list[tuple[str, str]]:
    """(what, text) rows of the panel."""
    size = f"{facts.parameters:,} parameters" if facts.parameters is not None else "parameters not on the card"
    return [
        ("model", f"{markup.code(facts.model)}, {group_text(facts.model, facts.group)}, {size}{orbit_text(facts)}"),
        ("input", input_line(facts)),
        ("data", data_line(facts)),
        ("test", test_line(facts)),
        ("equivariant", equivariance_line(facts)),
        ("training", training_line(facts)),
    ]


def card_panel(loaded: LoadedModel | None, title: str | None = None) -> CardFacts | None:
    """The model card of ``loaded`` in a bordered box; returns its facts (None for an untrained model)."""
    if loaded is None:
        return None
    facts = card_facts(loaded.card) if loaded.trained else None
    with st.container(border=True):
        st.markdown(f"**{markup.text(title or loaded.label)}**: model card")
        if facts is None:
            group = group_text(loaded.name, loaded.group.name)
            st.caption(f"untrained {markup.code(loaded.name)} ({group}, {loaded.image_size} px input, seed-0 "
                       "weights): no card, no metrics")
            return None
        st.markdown("\n".join(f"- *{what}*: {text}" for what, text in card_lines(facts)))
    return facts
