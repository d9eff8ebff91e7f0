"""Misclassified: evaluate a model on a simulated test set, click the confusion matrix, browse the
wrong predictions (most confident first) and open one in Explore."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app import figures, settings, state, widgets
from app.catalog import LoadedModel
from app.lenses import LensImage
from eqlens.errors import EqlensError

CHUNK = 16


def evaluate(loaded: LoadedModel, data: str, size: int, data_seed: int) -> dict:
    """Predictions chunk by chunk (for the progress bar), then eqlens's metrics on the whole set."""
    from eqlens.data.splits import resolve_eval_dataset
    from eqlens.training.evaluate import predict
    from eqlens.training.metrics import classification_report, softmax

    dataset = resolve_eval_dataset(data, "test", loaded.image_size, list(loaded.class_names), size=size,
                                   data_seed=data_seed, device="cpu", crop=loaded.crop)
    bar = st.progress(0.0, text="evaluating...")
    logits, labels = [], []
    for start in range(0, len(dataset), CHUNK):
        part = torch.utils.data.Subset(dataset, list(range(start, min(start + CHUNK, len(dataset)))))
        with loaded.lock:
            z, y, _ = predict(loaded.model, part, batch_size=CHUNK, device=settings.device(), mask=loaded_mask(loaded))
        logits.append(z)
        labels.append(y)
        done = min(start + CHUNK, len(dataset))
        bar.progress(done / len(dataset), text=f"evaluating: {done} / {len(dataset)} images")
    bar.empty()
    probs, labels = softmax(torch.cat(logits)), torch.cat(labels).numpy()
    report = classification_report(probs, labels, list(loaded.class_names))
    report.update(probabilities=np.asarray(probs), labels=labels, dataset=dataset, model_key=loaded.key)
    return report


def loaded_mask(loaded: LoadedModel) -> bool:
    return bool(loaded.card.get("input", {}).get("circular_mask", False))


def _store_click() -> None:
    """Selections are read-only widget state: copy the clicked cell into a plain key."""
    selection = st.session_state.get("mis_confusion_chart", {}).get("selection", {})
    points = selection.get("points", [])
    if points:
        st.session_state[state.CONFUSION_CELL] = int(points[0].get("point_index", 0))


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
            if st.button("Open in Explore", key=f"mis_open_{i}"):
                lens = LensImage(image[0].numpy(), f"test image #{i} ({report['data']})", class_names[labels[i]])
                state.request_explore(loaded.key, lens)
                st.switch_page("views/explore.py")


st.title("Misclassified")
with st.sidebar:
    loaded = widgets.model_selector("mis")
    data = st.selectbox("Test data (simulated)", ("model_i", "binary", "model_ii"), key="mis_data")
    size = st.number_input("Test images", 3, 5000, settings.EVAL_IMAGES, key="mis_size")
    data_seed = st.number_input("Data seed", 0, 10**6, int((loaded.card.get("data", {}) if loaded else {})
                                                          .get("data_seed", 0)), key="mis_seed")
    go = st.button("Evaluate", type="primary", key="mis_evaluate", disabled=loaded is None)
if loaded is None:
    st.info("Choose a model in the sidebar.")
    st.stop()
if loaded.regression is not None:
    st.info(f"{loaded.label} is a regression checkpoint (it predicts {loaded.regression.name}), not a classifier: "
            "it has no misclassified lenses. `eqlens evaluate` reports its errors; Explore shows it over the orbit.")
    st.stop()
if go:
    try:
        report = evaluate(loaded, data, int(size), int(data_seed))
        report["data"] = data
        st.session_state[state.EVALUATION] = report
        st.session_state.pop(state.CONFUSION_CELL, None)
    except (EqlensError, ValueError) as err:
        st.error(f"Cannot evaluate: {err}")
report = st.session_state.get(state.EVALUATION)
if report is None or report.get("model_key") != loaded.key:
    st.info("Press Evaluate to run the model on a simulated test set.")
    st.stop()
names = list(loaded.class_names)
m1, m2, m3 = st.columns(3)
m1.metric("accuracy", f"{report['accuracy']:.3f}")
m2.metric("macro AUC", f"{report['auc_macro']:.3f}")
m3.metric("test images", report["n"])
left, right = st.columns(2)
with left:
    st.plotly_chart(figures.confusion_figure(np.asarray(report["confusion"]), names), key="mis_confusion_chart",
                    on_select=_store_click, selection_mode="points", width="stretch", theme=None)
with right:
    roc = {n: {**c, "auc": report["per_class_auc"].get(n)} for n, c in report.get("roc", {}).items()}
    st.plotly_chart(figures.roc_figure(roc), key="mis_roc", width="stretch", theme=None)
gallery(report, names, loaded)
