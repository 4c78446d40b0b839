"""Running a test against both store engines: a raw connection to the store's database, as another process
would open (it sees only what is committed), for either engine."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

ENGINES = ("sqlite", "postgresql")


def is_postgres(target) -> bool:
    return isinstance(target, str) and target.startswith("postgresql://")


class Row(tuple):
    """A row readable by position and by column name, like sqlite3.Row."""

    def __new__(cls, names, values):
        row = super().__new__(cls, values)
        row.names = names
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)


class _PgRaw:
    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, params=()):
        if params:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return self.conn.execute(sql, list(params) if params else None)

    def commit(self):
        pass  # autocommit


def _row_factory(cursor):
    names = [c.name for c in cursor.description or ()]
    return lambda values: Row(names, values)


@contextmanager
def raw(target: Path | str):
    """A plain connection with ``execute(sql, params)`` (``?`` placeholders), rows readable by name; what it
    writes is committed when the block ends (at once on PostgreSQL)."""
    if is_postgres(target):
        import psycopg

        conn = psycopg.connect(target, autocommit=True, row_factory=_row_factory)
        try:
            yield _PgRaw(conn)
        finally:
            conn.close()
        return
    conn = sqlite3.connect(target)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def integrity_errors() -> tuple[type[Exception], ...]:
    """What either engine raises for a broken constraint (a foreign key, a unique index)."""
    import psycopg

    return (sqlite3.IntegrityError, psycopg.errors.IntegrityError)
