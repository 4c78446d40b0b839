"""The widgets the Chat and Compare pages share: the set-up screen, the model picker and a reply's parameters.

Each returns what the user chose, as the turn takes it (None: the model's default), so a page reads widgets
by their return value; the key is the page's, so each page (and each compare target) keeps its own choice.
"""

from __future__ import annotations

import streamlit as st

from chat import attachments, providers
from chat.config import ModelId, Settings
from chat.models import Capabilities

MODEL_DEFAULT = "model default"  # the choice that sends nothing: the model decides
THINKING_CHOICES = (MODEL_DEFAULT, "on", "off")


def provider_setup() -> None:
    """No provider is configured: what to do about it, and the page stops here."""
    st.title("Set up a provider")
    st.markdown(
        "No provider is configured yet, so there is no model to ask. Do one of these, then reload:\n\n"
        "- **OpenAI**: set `OPENAI_API_KEY` in the environment or in `.streamlit/secrets.toml`.\n"
        "- **Anthropic**: set `ANTHROPIC_API_KEY` the same way.\n"
        "- **A local or internal OpenAI-compatible server** (Ollama, vLLM, LM Studio): add it to "
        "`.streamlit/secrets.toml`:\n\n"
        "```toml\n[endpoints.ollama]\nbase_url = \"http://localhost:11434/v1\"\nmodels = [\"llama3.2\"]\n```\n\n"
        "`.streamlit/secrets.toml.example` lists every setting."
    )
    st.stop()


def model_picker(label: str, available: list[str], *, key: str, default: str | None, shown: bool = True) -> str:
    """A ``provider:model`` id from the models the endpoints serve; a choice no longer served falls back to
    ``default``. Not ``shown`` (a blind comparison), the choice is kept as it is."""
    if st.session_state.get(key) not in available:
        st.session_state[key] = default
    if not shown:
        st.session_state[key] = st.session_state[key]  # Streamlit forgets a widget's value while it is not drawn
        return st.session_state[key]
    return st.selectbox(label, available, key=key)


def takes_temperature(cfg: Settings, model_id: ModelId) -> bool:
    """Whether the model's provider takes a temperature (Anthropic's current API fixes it)."""
    return providers.takes_temperature(cfg.endpoint(model_id.provider))


def temperature(*, key: str, adjustable: bool = True) -> float | None:
    """Temperature; shown disabled (and never sent) where the provider's API fixes it."""
    value = st.number_input("Temperature", min_value=0.0, max_value=2.0, step=0.1, key=key, value=None,
                            placeholder="model default" if adjustable else "not adjustable", disabled=not adjustable,
                            help=None if adjustable else "This provider's API fixes the temperature.")
    return value if adjustable else None


def max_tokens(*, key: str) -> int | None:
    return st.number_input("Max output tokens", min_value=1, max_value=200_000, step=256, key=key, value=None,
                           placeholder="model default")


def system_prompt(*, key: str, placeholder: str = "You are a helpful assistant.") -> str | None:
    """The system prompt; blank is none."""
    return (st.text_area("System prompt", key=key, placeholder=placeholder) or "").strip() or None


def reasoning(caps: Capabilities, *, thinking: bool, effort_key: str, thinking_key: str) -> dict[str, str | None]:
    """Reasoning effort (offered unless the model is known not to take it: sent only when chosen) and, where
    ``thinking`` (Anthropic), Thinking on/off. Returns the parameters for ``Params``."""
    chosen: dict[str, str | None] = {}
    if caps.reasoning_effort is not False:
        options = [MODEL_DEFAULT, *caps.efforts]
        if st.session_state.get(effort_key) not in options:
            st.session_state[effort_key] = MODEL_DEFAULT
        chosen["reasoning_effort"] = st.selectbox(
            "Reasoning effort", options, key=effort_key,
            help="How much the model thinks before it answers. More effort: slower, costlier, often better.")
    if thinking and caps.thinking is not False:
        if st.session_state.get(thinking_key) not in THINKING_CHOICES:
            st.session_state[thinking_key] = MODEL_DEFAULT
        chosen["thinking"] = st.selectbox(
            "Thinking", THINKING_CHOICES, key=thinking_key,
            help="On: the model thinks before it answers, and you see its thinking above the reply.")
    return {name: None if value == MODEL_DEFAULT else value for name, value in chosen.items()}


def read_uploads(uploads) -> tuple[tuple[attachments.Attachment, ...], list[str]]:
    """The files an uploader (or the chat input) brought, read and checked by their content; and one sentence
    per file that cannot be taken (empty, damaged, SVG, not what its name says)."""
    files, problems = [], []
    for upload in uploads or ():
        try:
            files.append(attachments.read(upload.name, upload.getvalue()))
        except attachments.AttachmentError as exc:
            problems.append(exc.hint)
    return tuple(files), problems
