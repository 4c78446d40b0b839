"""The errors the store raises. Each says in one sentence what went wrong, so a page can show it as it is;
an engine turns its driver's errors about the database (not about the code) into these."""

from __future__ import annotations

from typing import NoReturn


class StoreError(Exception):
    """Base of every error the store raises. ``str(error)`` is one sentence a UI can show as it is."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer version of this code; it is left untouched."""

    def __init__(self, unknown: list[str]):
        self.unknown = unknown
        super().__init__(
            "The chat database was written by a newer version of this app; upgrade the app to open it."
        )


class DatabaseUnavailable(StoreError):
    """The database cannot be opened, read or written. ``reason`` is one of ``read_only``, ``corrupt``,
    ``cannot_open``, ``full``, ``io``. ``path`` is the file, or the server's URL without its password."""

    _messages = {
        "read_only": "The chat database at {path} is read-only, so chats cannot be saved.",
        "corrupt": "The file at {path} is not a readable chat database; move it aside to start a new one.",
        "cannot_open": "The chat database at {path} cannot be opened ({detail}).",
        "full": "The disk holding the chat database at {path} is full.",
        "io": "The chat database at {path} could not be read or written ({detail}).",
        "unreachable": "The chat database at {path} cannot be reached.",
    }

    def __init__(self, path: object, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(self._messages[reason].format(path=self.path, detail=detail or reason))


class DatabaseBusy(StoreError):
    """Another writer held what this write needs for longer than the busy timeout."""

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__("The chat database is busy with another writer; try again in a moment.")


class NotFound(StoreError, LookupError):
    def __init__(self, what: str, key: object):
        self.key = key
        super().__init__(f"That {what} no longer exists.")


def raise_typed(exc: Exception, typed: StoreError | None) -> NoReturn:
    """Inside an engine's ``except``: raise ``typed``, the store's error for a driver error about the
    database, from ``exc``; without one the error is about the code, and ``exc`` goes on as it is."""
    if typed is None:
        raise exc
    raise typed from exc
