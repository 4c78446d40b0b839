"""sqlite-utils without its optional pandas and numpy support.

sqlite-utils imports pandas and numpy whenever they are installed (Streamlit installs both) only to map
their value types to column types; the store never hands it such values. Importing them is most of the
chat page's own import time, and it lies on the first paint's path (the store is opened to draw the page),
so sqlite-utils is imported here with the two reported as missing, to the importing thread only: another
thread importing pandas meanwhile gets it as usual, and pandas imported before this module is simply used.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

_LEFT_OUT = ("pandas", "numpy")


class _LeaveOut:
    """A meta path finder reporting pandas and numpy as missing to one thread."""

    def __init__(self, thread: int):
        self.thread = thread

    def find_spec(self, name: str, path=None, target=None):
        if threading.get_ident() == self.thread and name.partition(".")[0] in _LEFT_OUT:
            raise ModuleNotFoundError(f"No module named {name!r} (left out of sqlite-utils)", name=name)
        return None


def _sqlite_utils() -> ModuleType:
    finder = _LeaveOut(threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        import sqlite_utils
    finally:
        sys.meta_path.remove(finder)
    return sqlite_utils


sqlite_utils = _sqlite_utils()
