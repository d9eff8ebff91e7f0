"""Misclassified: evaluate a model on a simulated test set of its own classes, read its normalised
confusion matrix (click a cell), ROC and calibration, export the numbers, browse the wrong
predictions (most confident first), open one to see its scene, or open it in Explore."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import streamlit as st

from app import card_panel, figures, lenses, markup, robustness_chart, scene_panel, settings, state, widgets
from app.catalog import LoadedModel
from app.lenses import LensImage
from eqlens.errors import EqlensError

CHUNK = 16
OPENED = "mis_opened"  # the gallery image whose scene is shown (index into the test split)
DATA, SEED, FOLLOWED = "mis_data", "mis_seed", "mis_data_followed"


def evaluate(loaded: LoadedModel, data: str, size: int, data_seed: int) -> dict:
    """eqlens's predictions (a progress bar per batch), then its metrics on the whole set."""
    from eqlens.checkpoint import predict
    from eqlens.data.splits import resolve_eval_dataset
    from eqlens.evaluation.metrics import classification_report, reliability, softmax

    dataset = resolve_eval_dataset(data, "test", loaded.image_size, list(loaded.class_names), size=size,
                                   data_seed=data_seed, device="cpu", crop=loaded.crop)
    bar = st.progress(0.0, text="evaluating...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"evaluating: {done} / {total} images")

    with loaded.lock:
        result = predict(loaded.model, loaded.card, dataset, batch_size=CHUNK, device=settings.device(),
                         progress=progress)
    bar.empty()
    logits = result.outputs
    probs, labels = softmax(logits), result.labels.numpy()
    report = classification_report(probs, labels, list(loaded.class_names))
    report["calibration"] = reliability(probs, labels, bins=settings.CALIBRATION_BINS)
    report.update(probabilities=np.asarray(probs), logits=logits.float().numpy(), labels=labels, dataset=dataset,
                  model_key=loaded.key, data_seed=int(data_seed))
    return report


# ---- the test data follows the model ---------------------------------------------------------------

def matching_simulations(loaded: LoadedModel) -> list[str]:
    """The built-in simulations whose classes are the model's, in its order (the only ones it can be tested on)."""
    return [name for name in lenses.SIM_CONFIGS if tuple(lenses.class_names(name)) == tuple(loaded.class_names)]


def follow_card(loaded: LoadedModel, offered: list[str]) -> None:
    """On a model change, set the test data and seed to its card's (before the widgets exist); a choice the
    model cannot be tested on (other classes) is never kept."""
    facts = card_panel.card_facts(loaded.card)
    if st.session_state.get(FOLLOWED) != loaded.key:
        st.session_state[FOLLOWED] = loaded.key
        spec = facts.data_spec if facts is not None else None
        st.session_state[DATA] = spec if spec in offered else offered[0]
        st.session_state[SEED] = facts.data_seed if facts is not None and facts.data_seed is not None else 0
    elif st.session_state.get(DATA) not in offered:
        st.session_state[DATA] = offered[0]


# ---- export: the numbers behind each figure ---------------------------------------------------------

def _csv(header: list[str], rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def confusion_csv(report: dict, names: list[str]) -> str:
    from eqlens.evaluation.metrics import normalised_confusion

    counts = np.asarray(report["confusion"])
    shares = normalised_confusion(counts)
    return _csv(["true", "predicted", "count", "share_of_true"],
                [[names[r], names[c], int(counts[r, c]), f"{shares[r, c]:.6g}"]
                 for r in range(len(names)) for c in range(len(names))])


def roc_csv(report: dict) -> str:
    rows = [[name, f"{f:.6g}", f"{t:.6g}", f"{h:.6g}"] for name, curve in report.get("roc", {}).items()
            for f, t, h in zip(curve["fpr"], curve["tpr"], curve["thresholds"], strict=True)]
    return _csv(["class", "false_positive_rate", "true_positive_rate", "threshold"], rows)


def calibration_csv(report: dict) -> str:
    cal = report["calibration"]
    edges = cal["edges"]
    return _csv(["bin_low", "bin_high", "count", "mean_confidence", "accuracy"],
                [[f"{edges[i]:.3g}", f"{edges[i + 1]:.3g}", cal["count"][i], f"{cal['confidence'][i]:.6g}",
                  f"{cal['accuracy'][i]:.6g}"] for i in range(len(cal["count"]))])


def predictions_csv(report: dict, names: list[str]) -> str:
    probs, labels = report["probabilities"], report["labels"]
    return _csv(["index", "true", "predicted", *[f"p_{n}" for n in names]],
                [[i, names[labels[i]], names[int(probs[i].argmax())], *[f"{p:.6g}" for p in probs[i]]]
                 for i in range(len(labels))])


def _finite(value):
    """JSON without NaN: a missing value (an empty bin, an absent class) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def metrics_json(report: dict, loaded: LoadedModel) -> str:
    from eqlens.evaluation.metrics import normalised_confusion

    keys = ("n", "accuracy", "auc_macro", "per_class_auc", "confusion", "calibration", "roc", "data", "data_seed")
    record = {"model": loaded.label, "class_names": list(loaded.class_names),
              **{k: report[k] for k in keys if k in report},
              "confusion_normalised": normalised_confusion(report["confusion"]).tolist()}
    return json.dumps(_finite(record), indent=1)


def downloads(report: dict, names: list[str], loaded: LoadedModel) -> None:
    stem = f"{loaded.label}_{report['data']}_{report['n']}"
    cols = st.columns(5)
    files = [("confusion (CSV)", confusion_csv(report, names), f"{stem}_confusion.csv", "text/csv"),
             ("ROC (CSV)", roc_csv(report), f"{stem}_roc.csv", "text/csv"),
             ("calibration (CSV)", calibration_csv(report), f"{stem}_calibration.csv", "text/csv"),
             ("predictions (CSV)", predictions_csv(report, names), f"{stem}_predictions.csv", "text/csv"),
             ("all metrics (JSON)", metrics_json(report, loaded), f"{stem}_metrics.json", "application/json")]
    for col, (label, data, name, mime) in zip(cols, files, strict=True):
        col.download_button(label, data, file_name=name, mime=mime, key=f"mis_download_{name.rsplit('_', 1)[1]}")
    st.caption("Each chart's camera icon saves it as a PNG; these buttons give the numbers behind them.")


# ---- the gallery and one opened lens ----------------------------------------------------------------

def _store_click() -> None:
    """Selections are read-only widget state: copy the clicked cell into a plain key."""
    selection = st.session_state.get("mis_confusion_chart", {}).get("selection", {})
    points = selection.get("points", [])
    if points:
        st.session_state[state.CONFUSION_CELL] = int(points[0].get("point_index", 0))


def _open(index: int) -> None:
    st.session_state[OPENED] = index


def rendered_item(dataset, index: int) -> tuple[np.ndarray, dict] | None:
    """Test image ``index`` re-rendered by its simulator: raw counts ``[H, W]`` (the native frame, before crop
    and resize) and its scene's truth; None when the data is not simulated."""
    from eqlens.data.splits import base_dataset

    base, mapping = base_dataset(dataset)
    if not hasattr(base, "simulator") or not hasattr(base, "simulator_seed"):
        return None
    i = int(mapping[index] if mapping is not None else index)
    batch = base.simulator.simulate(base.simulator_seed, [i])
    return batch.images[0].detach().cpu().numpy().astype(np.float32), batch.truth.for_image(0)


def lens_of(report: dict, index: int, class_names) -> LensImage:
    """The test image as a lens for Explore: the simulator's raw frame and truth where simulated (Explore crops
    and resizes it as the model does, and overlays the truth), else the model's input."""
    label = class_names[report["labels"][index]]
    source = f"test image #{index} ({report['data']}, data seed {report.get('data_seed', 0)})"
    rendered = rendered_item(report["dataset"], index)
    if rendered is not None:
        return LensImage(rendered[0], source, label, rendered[1])
    return LensImage(report["dataset"][index][0][0].numpy(), source, label)


def opened_panel(report: dict, class_names, loaded: LoadedModel) -> None:
    """The opened test image: the lens with its truth overlay, the model's probabilities, the scene's parameters."""
    index = st.session_state.get(OPENED)
    if index is None or index >= len(report["labels"]):
        return
    probs = report["probabilities"][index]
    lens = lens_of(report, index, class_names)
    with st.container(border=True):
        head, close = st.columns([6, 1])
        head.subheader(f"Test image #{index}: true {lens.label}, said {class_names[int(probs.argmax())]}")
        if close.button("Close", key="mis_close_opened"):
            st.session_state.pop(OPENED, None)
            st.rerun()
        left, right = st.columns([1, 1.6])
        with left:
            overlay = ": the Einstein ring, subhalos (circles growing with log mass), the vortex" if lens.truth else ""
            st.image(figures.lens_with_truth(lens.image, lens.truth or None, size=300),
                     caption=lens.source + overlay)
            st.plotly_chart(figures.probability_bar(class_names, probs, report["logits"][index],
                                                    title="the model's probabilities"),
                            key="mis_opened_probs", width="stretch", theme=None)
        with right:
            scene_panel.scene_panel(lens.truth)
            if st.button("Open in Explore", key="mis_explore_opened", type="primary"):
                state.request_explore(loaded.key, lens)
                st.switch_page("views/explore.py")


def anatomy(report: dict, class_names) -> list | None:
    """The error anatomy of the evaluated split (computed once per evaluation, kept in the report); None when
    the data has no scenes."""
    from eqlens.analysis.error_anatomy import dataset_truths, error_anatomy

    if "anatomy" not in report:
        truths = dataset_truths(report["dataset"])
        report["anatomy"] = None if truths is None else error_anatomy(
            truths, report["labels"], report["probabilities"].argmax(axis=1), list(class_names))
    return report["anatomy"]


def anatomy_section(report: dict, class_names) -> None:
    """Error rate against the scene's parameters, for the true class chosen (the one with most errors first)."""
    from eqlens.analysis.error_anatomy import RING_HALF_WIDTH_ARCSEC

    bins = anatomy(report, class_names)
    if not bins:
        return
    st.subheader("Where the errors lie")
    first = {}  # class -> its first feature's bins, whose counts the page quotes
    for b in bins:
        first.setdefault(b.class_name, b)
    classes = [n for n in class_names if n in first]
    errors = {n: int(first[n].errors.sum()) for n in classes}
    lenses = {n: int(first[n].counts.sum()) for n in classes}
    # The counts go in the caption, not the options' labels: after a second evaluation the browser keeps
    # showing the first evaluation's count in the selected label (seen in the screenshots).
    chosen = st.selectbox("True class", classes, index=classes.index(max(classes, key=errors.get)),
                          key="mis_anatomy_class")
    st.caption(f"{errors[chosen]} of {lenses[chosen]} true {chosen} lenses misclassified; every class: "
               + ", ".join(f"{n} {errors[n]}" for n in classes))
    st.plotly_chart(figures.error_anatomy_figure([b for b in bins if b.class_name == chosen], chosen),
                    key="mis_anatomy_chart", width="stretch", theme=None)
    st.caption("Each line bins this class's test lenses into quantiles of one parameter of their simulated scene "
               "(lowest values left) and shows the share misclassified, with binomial standard errors; hover for "
               f"the bin's range and counts. Subhalo masses in recipe units; near the ring: within "
               f"{RING_HALF_WIDTH_ARCSEC}\" of the Einstein radius, where substructure bends the arcs.")
    rows = [row for b in bins for row in b.rows()]
    st.download_button("Error anatomy (CSV)", _csv(list(rows[0]), [list(r.values()) for r in rows]),
                       file_name="error_anatomy.csv", mime="text/csv", key="mis_anatomy_csv")


def gallery(report: dict, class_names, loaded: LoadedModel) -> None:
    from eqlens.data.splits import iterate_batches

    probs, labels = report["probabilities"], report["labels"]
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    cell = st.session_state.get(state.CONFUSION_CELL)
    k = len(class_names)
    if cell is not None:
        true_c, pred_c = divmod(cell, k)
        wrong = np.flatnonzero((labels == true_c) & (predicted == pred_c))
        st.markdown(f"**true `{class_names[true_c]}`, predicted `{class_names[pred_c]}`**: {len(wrong)} images")
        if st.button("Show all misclassified", key="mis_clear_cell"):
            st.session_state.pop(state.CONFUSION_CELL, None)
            st.rerun()
    else:
        st.markdown(f"**{len(wrong)} misclassified** of {len(labels)}, most confident first")
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:12]
    if len(order) == 0:
        st.info("No images in this cell.")
        return
    images, _ = next(iterate_batches(report["dataset"], [order.tolist()], "cpu"))
    cols = st.columns(6)
    for slot, (i, image) in enumerate(zip(order, images, strict=True)):
        with cols[slot % 6]:
            st.image(figures.image_grid([(f"#{i}", image[0].numpy())], cmap="magma", cell=130,
                                        colorbar_label="input"))
            st.caption(f"true {class_names[labels[i]]}, said {class_names[predicted[i]]} "
                       f"({probs[i, predicted[i]]:.2f})")
            st.button("Scene", key=f"mis_scene_{i}", help="show this lens with its scene's parameters above",
                      on_click=_open, args=(int(i),))
            if st.button("Open in Explore", key=f"mis_open_{i}"):
                state.request_explore(loaded.key, lens_of(report, int(i), class_names))
                st.switch_page("views/explore.py")


st.title("Misclassified")
with st.sidebar:
    loaded = widgets.model_selector("mis")
    offered = matching_simulations(loaded) if loaded is not None else []
    if offered:
        follow_card(loaded, offered)
        data = st.selectbox("Test data (simulated)", offered, key=DATA,
                            help="the simulations with this model's classes; its card's own first")
        size = st.number_input("Test images", 3, 5000, settings.EVAL_IMAGES, key="mis_size")
        data_seed = st.number_input("Data seed", 0, 10**6, key=SEED,
                                    help="the card's data seed: its test split is disjoint from its training data")
    go = st.button("Evaluate", type="primary", key="mis_evaluate", disabled=not offered)
if loaded is None:
    st.info("Choose a model in the sidebar.")
    st.stop()
if loaded.regression is not None:
    st.info(f"{markup.text(loaded.label)} is a regression checkpoint (it predicts "
            f"{markup.text(loaded.regression.name)}), not a classifier: "
            "it has no misclassified lenses. `eqlens evaluate` reports its errors; Explore shows it over the orbit.")
    st.stop()
card_panel.card_panel(loaded)
robustness_chart.robustness_section(loaded.key)  # where the model stops working (docs/robustness.json)
if not offered:
    st.info(f"No built-in simulation has this model's classes ({markup.text(', '.join(loaded.class_names))}): "
            "evaluate it on its "
            "own data with `eqlens evaluate`.")
    st.stop()
if go:
    try:
        report = evaluate(loaded, data, int(size), int(data_seed))
        report["data"] = data
        st.session_state[state.EVALUATION] = report
        st.session_state.pop(state.CONFUSION_CELL, None)
        st.session_state.pop(OPENED, None)
    except (EqlensError, ValueError) as err:
        st.error(f"Cannot evaluate: {markup.text(err)}")
report = st.session_state.get(state.EVALUATION)
if report is None or report.get("model_key") != loaded.key:
    st.info("Press Evaluate to run the model on a simulated test set.")
    st.stop()
names = list(loaded.class_names)
m1, m2, m3, m4 = st.columns(4)
m1.metric("accuracy", f"{report['accuracy']:.3f}")
m2.metric("macro AUC", f"{report['auc_macro']:.3f}")
m3.metric("test images", report["n"])
m4.metric("calibration error (ECE)", f"{report['calibration']['ece']:.3f}",
          help="expected calibration error: the image-weighted mean gap between confidence and accuracy per bin")
st.caption(f"{markup.text(report['data'])} test split, data seed {report.get('data_seed', 0)}, {report['n']} images")
left, middle, right = st.columns(3)
with left:
    st.plotly_chart(figures.normalised_confusion_figure(np.asarray(report["confusion"]), names),
                    key="mis_confusion_chart", on_select=_store_click, selection_mode="points", width="stretch",
                    theme=None)
with middle:
    roc = {n: {**c, "auc": report["per_class_auc"].get(n)} for n, c in report.get("roc", {}).items()}
    st.plotly_chart(figures.roc_figure(roc), key="mis_roc", width="stretch", theme=None)
with right:
    st.plotly_chart(figures.reliability_figure(report["calibration"]), key="mis_calibration", width="stretch",
                    theme=None)
downloads(report, names, loaded)
anatomy_section(report, names)
opened_panel(report, names, loaded)
gallery(report, names, loaded)
