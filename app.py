"""Entry point: `streamlit run app.py`. Page config, navigation, and the preamble every page shares (settings,
store, who is asking: see ui/page.py); each page is its own script."""

import streamlit as st

from ui.page import preamble

st.set_page_config(page_title="Chat workbench", page_icon="💬", layout="wide")

page = st.navigation([
    st.Page("app_pages/chat.py", title="Chat", icon=":material/chat:", default=True),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/history.py", title="History", icon=":material/history:"),
])
with preamble():  # stops the run with a clear message (or a login button) when the page cannot be shown
    page.run()
