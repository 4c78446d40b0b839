"""What both engines' lists of migrations share: a migration registered by its function's name, once, in
order; and which migrations a database still needs, refusing one migrated by newer code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from chat.store.errors import SchemaTooNew

M = TypeVar("M", bound=Callable)


def registering(migrations: list[M]) -> Callable[[M], M]:
    """The ``@migration`` decorator of one engine: appends the function to ``migrations``."""

    def migration(fn: M) -> M:
        if any(m.__name__ == fn.__name__ for m in migrations):
            raise ValueError(f"migration {fn.__name__} is registered twice")
        migrations.append(fn)
        return fn

    return migration


def still_to_apply(done: list[str], migrations: list[M]) -> list[M]:
    """The migrations not in ``done`` (the names a database has applied), in order. Raises
    :class:`SchemaTooNew` if the database has applied a migration this code does not know."""
    known = {m.__name__ for m in migrations}
    unknown = [name for name in done if name not in known]
    if unknown:
        raise SchemaTooNew(unknown)
    return [m for m in migrations if m.__name__ not in done]
