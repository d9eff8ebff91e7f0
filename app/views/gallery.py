"""Gallery: a few dozen simulated lenses chosen for teaching and research, one click from Explore or What-if.

The lenses and the reasons they were chosen come from ``app/gallery.json``, written by
``scripts/build_gallery.py`` through :mod:`eqlens.analysis.gallery` (truth criteria on a fixed range of seeds,
and the flagship's recorded predictions). Each thumbnail is the lens the simulator renders for its
(config, class, seed), the same one Explore's "Simulate" selector shows for that seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from app import catalog, figures, lenses, state
from eqlens.analysis.gallery import Section

GALLERY_FILE = Path(__file__).resolve().parents[1] / "gallery.json"
THUMB_PX = 200
COLUMNS = {"vortices": 4}  # else 6: two seeds in every class per row (classes, population)


@st.cache_data(show_spinner=False)
def gallery_record(path: str, mtime: float) -> dict:
    return json.loads(Path(path).read_text())


def sections() -> tuple[list[Section], dict]:
    record = gallery_record(str(GALLERY_FILE), GALLERY_FILE.stat().st_mtime)
    return [Section.from_dict(s) for s in record["sections"]], record


@st.cache_data(show_spinner=False, max_entries=256)
def thumbnail(config_name: str, class_index: int, seed: int) -> bytes:
    """The lens with its truth drawn on, as PNG bytes (cached across sessions)."""
    import io

    lens = lenses.simulate(config_name, class_index, seed)
    buffer = io.BytesIO()
    figures.lens_with_truth(lens.image, lens.truth, size=THUMB_PX).save(buffer, "PNG")
    return buffer.getvalue()


def explore_model_key() -> str:
    """The model a gallery lens opens with: the shipped flagship (whose errors the gallery shows), else the
    model Explore last showed, else the first model offered."""
    return (catalog.flagship_key() or st.session_state.get("explore_model")
            or catalog.entries(state.uploaded_checkpoints())[0].key)


def pick_cell(section: Section, i: int, pick, class_names, model_key: str, model_name: str) -> None:
    st.image(thumbnail(pick.config, pick.class_index, pick.seed), width="stretch",
             caption=f"{pick.config} / {pick.class_name} / seed {pick.seed}")
    said = pick.predicted(class_names) if class_names and section.key != "errors" else None  # errors: in the reason
    verdict = "" if said is None else (f" {model_name} says **{said}** ({max(pick.probabilities):.2f})."
                                       + (" ✗" if said != pick.class_name else ""))
    st.markdown(f"<small>{pick.reason}.{verdict}</small>", unsafe_allow_html=True)
    if st.button("Explore", key=f"gallery_open_{section.key}_{i}", help="open this lens in Explore",
                 icon=":material/rotate_right:", width="stretch"):
        state.request_explore(model_key, lenses.simulate(pick.config, pick.class_index, pick.seed))
        st.switch_page("views/explore.py")
    if st.button("What if", key=f"gallery_whatif_{section.key}_{i}", help="edit this lens's scene",
                 icon=":material/tune:", width="stretch"):
        state.request_whatif(pick.config, pick.class_index, pick.seed)
        st.switch_page("views/whatif.py")


def show_section(section: Section, class_names, model_key: str, model_name: str) -> None:
    st.subheader(section.title)
    st.caption(section.text)
    columns = COLUMNS.get(section.key, 6)
    for start in range(0, len(section.picks), columns):
        cols = st.columns(columns)
        for i, pick in enumerate(section.picks[start:start + columns], start=start):
            with cols[i - start], st.container(border=True):
                pick_cell(section, i, pick, class_names, model_key, model_name)


st.title("Gallery")
chosen, record = sections()
model = record.get("model") or {}
model_key = explore_model_key()
st.caption(f"{sum(len(s.picks) for s in chosen)} simulated lenses, each image {record['image_index']} of its seed "
           f"(candidates: seeds {record['seeds'][0]}-{record['seeds'][1] - 1}), chosen by "
           "`eqlens.analysis.gallery` (`scripts/build_gallery.py`); predictions recorded from "
           f"`{model.get('name', '?')}` (weights sha256 {model.get('weights_sha256', '?')[:12]}). On the truth: "
           "orange circle, the Einstein ring; cyan circles, subhalos (larger for a larger log mass); pink line, the "
           "vortex. **Explore** opens a lens with "
           f"`{model_key.rpartition('/')[2]}`; **What if** edits its scene.")
names = model.get("class_names")
titles = [s.title for s in chosen]
# one section at a time by default (a dozen thumbnails draw fast on a loaded machine); "all" for browsing
shown = st.segmented_control("Section", titles + ["all"], default=titles[0], key="gallery_section",
                             label_visibility="collapsed")
for section in chosen:
    if shown in (None, "all", section.title):
        show_section(section, names, model_key, model.get("name", "the model"))
