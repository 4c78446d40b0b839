"""Streamlit glue shared by the pages: cached resources and rendering helpers. Logic lives in chat/."""
