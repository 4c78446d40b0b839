"""The times the store writes and reads: one text format (a leaf module: the store, the spend limit and the
words about a reply all read it)."""

from __future__ import annotations

from datetime import UTC, datetime

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # ISO-8601 in UTC to the microsecond: fixed width, so it sorts as text


def stamp(moment: datetime) -> str:
    """A time as the store writes it (:data:`STAMP_FORMAT`, in UTC)."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """A time the store wrote (see :func:`stamp`), as an aware UTC datetime. ValueError when it is not one."""
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


def now() -> str:
    """The current time as the store writes it (see :func:`stamp`)."""
    return stamp(datetime.now(UTC))
