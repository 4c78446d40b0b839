"""What a server process does once, at its first page run: the socket fix at once, and in the background
what the first reply needs but the first paint does not."""

from __future__ import annotations

import importlib
import threading

from server import tuning

first_reply_loaded = threading.Event()
"""Set once what a first reply needs is loaded (or failed to load): other loading waits for it rather than
compete with that reply for the CPU."""

_starting = threading.Lock()
_started = False


def once(port: int, *, first_kind: str = "openai") -> None:
    """Turn Nagle's algorithm off on the server's sockets and start the background loading, the SDK of
    ``first_kind`` (the default model's wire format) first; later calls do nothing. ``port``: the port
    Streamlit serves on."""
    global _started
    with _starting:
        if _started:
            return
        _started = True
    tuning.disable_nagle(port)
    threading.Thread(target=preload, args=(first_kind,), name="preload", daemon=True).start()


def preload(first_kind: str = "openai") -> None:
    """Load, while the first page is drawn and read (an import still in flight is simply waited for): what a
    first reply on ``first_kind`` needs (pandas, which Streamlit's first `st.write_stream` imports, the SDK and
    its adapter with OpenAI's Responses parser, the token encodings and the price data), then the other SDK;
    then freeze the start-up heap (see tuning)."""
    kinds = ["anthropic", "openai"] if first_kind == "anthropic" else ["openai", "anthropic"]
    try:
        for name in ("pandas", "pyarrow"):  # first: a reply waits for its SDK before any text, the page not
            importlib.import_module(name)  # for pandas once the text flows
        _load(kinds[0])
        from chat import tokens
        from chat.pricing import Pricer
        from chat.providers import Usage

        tokens.warm_up()  # a stopped reply's tokens are estimated
        Pricer().cost("openai", "gpt-4o-mini", Usage(input_tokens=1, output_tokens=1))  # every reply's cost
    finally:
        first_reply_loaded.set()
    _load(kinds[1])
    tuning.freeze_startup_heap()


def _load(kind: str) -> None:
    """One SDK with the resource modules it imports on first use, and its adapter."""
    if kind == "anthropic":
        importlib.import_module("anthropic.resources.messages")
        importlib.import_module("chat.providers.anthropic")
        return
    importlib.import_module("openai.resources.chat")
    importlib.import_module("openai.resources.responses")
    openai_adapter = importlib.import_module("chat.providers.openai")
    try:
        openai_adapter.warm_up()  # the Responses event parser, built on first use
    except Exception:  # an optimisation only: the first reply then builds it
        pass
