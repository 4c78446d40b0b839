"""Copy a SQLite store into PostgreSQL: ``python3 dev.py migrate-db chat.db postgresql://...``.

Both databases are opened as the app opens them first (so both are migrated to the same schema version), then
each table is streamed with COPY into a temporary table and upserted by id, in the order the rows were
created. Running it again copies nothing twice: rows already there are brought up to date (a reply finished
since the last run, a conversation renamed or deleted) and new ones are added, so it can be run once while
the app still runs on SQLite and once more after stopping it. The per-table counts are printed at the end.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from chat.config.database import is_postgres_url
from chat.store import open_store

# parents first: foreign keys hold at every step (a blob before the attachments that name it)
TABLES = ("compare_runs", "conversations", "messages", "blobs", "attachments")
KEYS = {"blobs": "sha256"}  # the key a row is matched by; "id" for the others
IMMUTABLE = {"blobs"}  # content-addressed: a blob already there is the same bytes, left as it is
IDENTITIES = ("messages", "attachments")  # tables whose ids the copy keeps
BATCH = 5000


@dataclass
class Copied:
    table: str
    source: int  # rows in the SQLite table
    added: int  # rows new to PostgreSQL
    updated: int  # rows PostgreSQL had, brought up to date
    target: int  # rows in the PostgreSQL table afterwards

    def line(self) -> str:
        return (f"{self.table:<14} {self.source:>10,} in SQLite   {self.added:>10,} added   {self.updated:>10,} "
                f"updated   {self.target:>10,} in PostgreSQL")


def copy_store(sqlite_path: str | Path, url: str, *, out=None) -> list[Copied]:
    """Copy every conversation, message, compare run and attached file of the SQLite store at ``sqlite_path`` into the
    PostgreSQL database at ``url``; returns (and prints to ``out``) the counts per table."""
    if not is_postgres_url(url):
        raise ValueError(f"the target must be a postgresql:// URL, not {url!r}")
    path = Path(sqlite_path)
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite database at {path}")
    open_store(path).close()  # migrates the file to this version's schema (a newer one is refused: SchemaTooNew)
    target = open_store(url, pool_size=1)  # the same for PostgreSQL
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    results = []
    try:
        with target.db() as db, db.conn.transaction():
            for table in TABLES:
                results.append(_copy_table(source, db.conn, table))
            # messages and attachments keep their ids: the next new one is numbered after them
            for table in IDENTITIES:
                db.conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                f"GREATEST((SELECT MAX(id) FROM {table}), 1))")
    finally:
        source.close()
        target.close()
    for result in results:
        print(result.line(), file=out or sys.stdout)
    return results


def _copy_table(source: sqlite3.Connection, conn, table: str) -> Copied:
    """Every column the SQLite table has (so each later migration's, such as messages.tool_steps, too)."""
    columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
    quoted = ", ".join(f'"{c}"' for c in columns)
    conn.execute(f"CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT {quoted} FROM {table} WITH NO DATA")
    conn.execute("ALTER TABLE stage ADD COLUMN _n bigint")
    count = 0
    with conn.cursor().copy(f"COPY stage ({quoted}, _n) FROM STDIN") as copy:
        cursor = source.execute(f"SELECT {', '.join(columns)}, rowid FROM {table} ORDER BY rowid")
        while rows := cursor.fetchmany(BATCH):
            for row in rows:
                copy.write_row(row)
            count += len(rows)
    key = KEYS.get(table, "id")
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c != key)
    action = "DO NOTHING" if table in IMMUTABLE else f"DO UPDATE SET {updates}"
    inserted = conn.execute(
        f"WITH upserted AS (INSERT INTO {table} ({quoted}) SELECT {quoted} FROM stage ORDER BY _n "
        f"ON CONFLICT ({key}) {action} RETURNING (xmax = 0) AS added) "
        "SELECT COUNT(*) FILTER (WHERE added), COUNT(*) FILTER (WHERE NOT added) FROM upserted").fetchone()
    conn.execute("DROP TABLE stage")
    total = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return Copied(table, count, inserted[0], inserted[1], total)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 dev.py migrate-db SQLITE_FILE postgresql://user:password@host:port/dbname",
              file=sys.stderr)
        return 2
    from chat.store.errors import StoreError

    try:
        copy_store(argv[0], argv[1])
    except (StoreError, FileNotFoundError, ValueError) as exc:
        print(f"migrate-db: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
