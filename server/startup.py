"""What a server process does once, at its first page run: the socket fix at once, and in the background
what the first reply needs but the first paint does not."""

from __future__ import annotations

import threading

from server import tuning

_starting = threading.Lock()
_started = False


def once(port: int) -> None:
    """Turn Nagle's algorithm off on the server's sockets and start the background loading; later calls do
    nothing. ``port``: the port Streamlit serves on."""
    global _started
    with _starting:
        if _started:
            return
        _started = True
    tuning.disable_nagle(port)
    threading.Thread(target=preload, name="preload", daemon=True).start()


def preload() -> None:
    """What the first reply needs, loaded while the first page is drawn and read (an import still in flight is
    simply waited for): OpenAI's SDK and adapter with its Responses parser, pandas (Streamlit's first
    `st.write_stream` imports it), then Anthropic's, the token encodings and the price data; then the
    start-up heap is frozen (see tuning)."""
    import importlib

    import openai.resources.chat  # noqa: F401

    import chat.providers.openai

    try:
        chat.providers.openai.warm_up()  # the Responses event parser, built on first use
    except Exception:  # an optimisation only: the first reply then builds it
        pass
    for name in ("pandas", "anthropic.resources.messages", "chat.providers.anthropic"):  # in this order
        importlib.import_module(name)
    from chat import tokens
    from chat.pricing import Pricer
    from chat.providers import Usage

    tokens.warm_up()
    Pricer().cost("openai", "gpt-4o-mini", Usage(input_tokens=1, output_tokens=1))
    tuning.freeze_startup_heap()
