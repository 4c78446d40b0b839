"""A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, `initdb` and `pg_ctl` on a temporary
directory and a free loopback port, run as the `postgres` user when we are root (initdb and postgres refuse to run
as root). Stopped by its process id; its directory is removed."""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from e2e_support import free_port

PG_ROOT = Path("/usr/lib/postgresql")


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (PG_BIN overrides); None when there is none."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    versions = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


class PostgresServer:
    """``with PostgresServer() as pg: pg.new_database()`` -> a ``postgresql://`` URL of an empty database."""

    def __init__(self, *, settings: dict[str, str] | None = None):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError(f"PostgreSQL is not installed (no {PG_ROOT}/*/bin/initdb); `python3 dev.py test` "
                               "installs Debian's postgresql package (root on Debian).")
        self.as_postgres = hasattr(os, "geteuid") and os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="chat-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.settings = {
            "listen_addresses": "127.0.0.1", "fsync": "off", "synchronous_commit": "off",
            "full_page_writes": "off", "max_connections": "200", "shared_buffers": "128MB",
            **(settings or {}),
        }
        self.pid: int | None = None
        self._names = itertools.count(1)

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self.as_postgres:
            command = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
        out = subprocess.run(command, capture_output=True, text=True, cwd=self.dir)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")

    def start(self) -> PostgresServer:
        os.chmod(self.dir, 0o755)
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        return self.resume()

    def resume(self) -> PostgresServer:
        """Start the server on its data directory (again, after :meth:`halt`), on the same port."""
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} {options}", "start")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_of(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url_of(database), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, template: str | None = None) -> str:
        """A new database's URL; a copy of ``template`` when given (a database nobody is connected to)."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.url_of(name)

    def stop(self) -> None:
        """Fast shutdown by pid (SIGINT), then the directory is removed."""
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)

    def halt(self) -> None:
        """Fast shutdown by pid (SIGINT), as when the database server goes down; its data stays for
        :meth:`resume`."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGINT)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    os.kill(self.pid, 0)
                    time.sleep(0.05)
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.pid = None

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
