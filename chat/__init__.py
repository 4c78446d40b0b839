"""The chat workbench's logic: providers, storage, tokens, pricing and turns. Never imports streamlit."""
