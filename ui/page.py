"""The preamble every page shares: settings, the store and who is asking, once per run, handed to the page.

`app.py` runs the page inside :func:`preamble`; the page takes what it needs with :func:`context`. The hand-off
is a context variable: Streamlit runs a session's script on that session's own thread, and the page is executed
in the same run as `app.py`, so what one run set is what its page reads, and no other session sees it. A page
script run on its own (without `app.py`) computes its context itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple

import streamlit as st

from chat.config import Settings
from chat.identity import Viewer
from chat.store import Store
from ui.resources import boot, current_viewer, signed_in_caption


class PageContext(NamedTuple):
    """What every page reads before its first widget."""

    settings: Settings
    store: Store
    viewer: Viewer


_current: ContextVar[PageContext | None] = ContextVar("page_context", default=None)


def _start() -> PageContext:
    """Settings and store (or a stopped run saying what is wrong), who is asking (or a stopped run with a
    login button or the reason), and who is signed in, at the top of the sidebar."""
    cfg, db = boot()
    viewer = current_viewer()
    with st.sidebar:
        signed_in_caption(viewer)
    return PageContext(cfg, db, viewer)


@contextmanager
def preamble() -> Iterator[PageContext]:
    """The preamble, then the page drawn inside this block reads its result with :func:`context`."""
    token = _current.set(_start())
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def context() -> PageContext:
    """This run's settings, store and viewer."""
    return _current.get() or _start()
