"""What a server process does once, at its first page run: the socket fix at once, and what a first reply
needs but the first paint does not, loaded in the background once that run has ended."""

from __future__ import annotations

import importlib
import threading

from chat.providers import SDK_IMPORTS
from server import tuning

FIRST_RUN_WAIT = 10.0  # seconds the background loading waits for the first page run to end before it starts anyway

first_reply_loaded = threading.Event()
"""Set once what a first reply needs is loaded (or failed to load): other loading waits for it rather than
compete with that reply for the CPU."""

_starting = threading.Lock()
_started = False


def once(port: int, *, first_kind: str = "openai") -> None:
    """Turn Nagle's algorithm off on the server's sockets and start the background loading, the SDK of
    ``first_kind`` (the default model's wire format) first; later calls do nothing. ``port``: the port
    Streamlit serves on. Called from a page run: the loading starts when that run ends."""
    global _started
    with _starting:
        if _started:
            return
        _started = True
    tuning.disable_nagle(port)
    page_run = threading.current_thread()
    threading.Thread(target=preload, args=(first_kind, page_run), name="preload", daemon=True).start()


def preload(first_kind: str = "openai", after: threading.Thread | None = None) -> None:
    """Load what a first reply on ``first_kind`` needs (see ``reply_needs``; then the token encodings and the
    price data), then the other SDK; then freeze the start-up heap (see tuning).

    ``after``: the thread of the page run that started this (Streamlit runs a session's script on a thread
    that ends when its runs do), up to FIRST_RUN_WAIT: threads share the interpreter lock, so loading
    alongside that run would slow the run that draws the chat input. A reply sent before this is done loads
    what it needs itself (``reply_needs``)."""
    if after is not None and after is not threading.current_thread():
        after.join(FIRST_RUN_WAIT)
    kinds = ["anthropic", "openai"] if first_kind == "anthropic" else ["openai", "anthropic"]
    try:
        reply_needs(kinds[0])
        from chat import tokens
        from chat.pricing import Pricer
        from chat.providers import Usage

        tokens.warm_up()  # a stopped reply's tokens are estimated
        Pricer().cost("openai", "gpt-4o-mini", Usage(input_tokens=1, output_tokens=1))  # every reply's cost
    finally:
        first_reply_loaded.set()
    _load(kinds[1])
    tuning.freeze_startup_heap()


def reply_needs(kind: str) -> None:
    """Load, in the calling thread, what a reply on ``kind`` needs before its request goes out (what another
    thread is loading is waited for; quick once loaded): pandas, which Streamlit's first `st.write_stream`
    imports (a reply whose text flowed meanwhile would be drawn in one piece), then the SDK and its adapter
    with OpenAI's Responses parser."""
    with SDK_IMPORTS:
        for name in ("pandas", "pyarrow"):
            importlib.import_module(name)
        _load(kind)


def _load(kind: str) -> None:
    """One SDK with the resource modules it imports on first use, and its adapter."""
    with SDK_IMPORTS:
        _import(kind)


def _import(kind: str) -> None:
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
