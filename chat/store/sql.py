"""The small steps every query of the store is written with: rows read as dicts, ``?`` placeholders, an
insert or an update of one row, JSON text (times: chat.timestamps). The SQL is written once for both engines (``?``
placeholders; identifiers such as ``"user"`` quoted); what differs is a method of the engine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from chat.store.errors import NotFound

IN_LIST_MAX = 500  # values in one ``IN (...)`` list: a longer list is read in chunks of this size


def dumps(value: dict | list | None) -> str | None:
    """JSON text for a column (None stays NULL)."""
    return None if value is None else json.dumps(value, ensure_ascii=False)


def rows(db: Any, sql: str, params: Any = ()) -> list[dict]:
    cursor = db.execute(sql, params)
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]


def one(db: Any, sql: str, params: Any = ()) -> dict | None:
    found = rows(db, sql, params)
    return found[0] if found else None


def marks(values: Sequence | dict) -> str:
    """One ``?`` per value, comma-separated."""
    return ", ".join("?" for _ in values)


def chunks(values: Sequence, size: int = IN_LIST_MAX) -> Iterator[Sequence]:
    """``values`` in slices short enough for one ``IN (...)`` list each."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def insert_sql(table: str, row: dict) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)`` for the keys of ``row``."""
    columns = ", ".join(f'"{column}"' for column in row)
    return f"INSERT INTO {table} ({columns}) VALUES ({marks(row)})"


def insert(db: Any, table: str, row: dict) -> None:
    db.execute(insert_sql(table, row), list(row.values()))


def update(db: Any, table: str, key: object, changes: dict) -> None:
    """Set ``changes`` on the row of ``table`` whose id is ``key``; NotFound when there is none."""
    assignments = ", ".join(f'"{column}" = ?' for column in changes)
    cursor = db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", [*changes.values(), key])
    if cursor.rowcount == 0:
        raise NotFound(table.rstrip("s"), key)
