"""eqlens app entry point: ``streamlit run app/main.py``.

Seven pages under ``app/views/``; shared helpers in ``app/`` (catalog of models, lens sources,
figures, the background training job). The app only calls the ``eqlens`` package.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import hostcheck  # noqa: E402

hostcheck.install()  # every HTTP request under a Host not in server.allowedHosts is refused (DNS rebinding)

st.set_page_config(page_title="eqlens", page_icon="🔭", layout="wide")

VIEWS = Path(__file__).resolve().parent / "views"
PAGES = [
    st.Page(VIEWS / "explore.py", title="Explore", icon=":material/rotate_right:", default=True),
    st.Page(VIEWS / "compare.py", title="Compare", icon=":material/compare:"),
    st.Page(VIEWS / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(VIEWS / "misclassified.py", title="Misclassified", icon=":material/error:"),
    st.Page(VIEWS / "learn.py", title="Learn", icon=":material/school:"),
    st.Page(VIEWS / "gallery.py", title="Gallery", icon=":material/photo_library:"),
    st.Page(VIEWS / "whatif.py", title="What if", icon=":material/tune:"),
]
st.navigation(PAGES).run()
