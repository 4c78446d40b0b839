"""Entry point: `streamlit run app.py`. Page config and navigation only; each page is its own script."""

import streamlit as st

st.set_page_config(page_title="Chat workbench", page_icon="💬", layout="wide")

page = st.navigation([
    st.Page("app_pages/chat.py", title="Chat", icon=":material/chat:", default=True),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/history.py", title="History", icon=":material/history:"),
])
page.run()
