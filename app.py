"""Recsys Transfer Lab: does transfer learning help a thin recommendation domain?

Run with ``streamlit run app.py``. This file only sets up the page, the session state
and the sidebar, then hands over to the page the user chose (``st.navigation``); each
page in ``views/`` reads widgets, calls the engine (``recsys_core``) and renders.
Heavy libraries (torch, transformers) are imported inside the functions that need them,
so the first page answers within seconds of the server starting.
"""

from __future__ import annotations

import streamlit as st

from recsys_core.embeddings.maps import warm_maps
from ui import state
from ui.components import sidebar

st.set_page_config(
    page_title="Recsys Transfer Lab",
    page_icon=":material/hub:",
    layout="wide",
    initial_sidebar_state="expanded",
)
state.init_session_state()
state.keep_widget_values()

pages = {
    "Prepare": [
        st.Page("views/data.py", title="Data", icon=":material/database:", default=True),
        st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    ],
    "Analyse": [
        st.Page("views/compare.py", title="Compare", icon=":material/leaderboard:"),
        st.Page("views/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        st.Page("views/users.py", title="Users", icon=":material/person_search:"),
        st.Page("views/whatif.py", title="What-if", icon=":material/query_stats:"),
    ],
}
page = st.navigation(pages)
# A little less empty space above the page title than Streamlit's default.
st.markdown(
    "<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem;}</style>",
    unsafe_allow_html=True,
)
sidebar()
warm_maps()  # UMAP's numba code loaded once per process, in the background (issue 13)
page.run()
