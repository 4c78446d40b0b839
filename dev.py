#!/usr/bin/env python3
"""Project tasks that need nothing but Python 3.11+.

    python3 dev.py run     start the app (streamlit run app.py)
    python3 dev.py test    run every test (unit, provider wire, AppTest, headless Chromium)
    python3 dev.py bench   run the benchmarks and print their figures
    python3 dev.py migrate-db chat.db postgresql://user:password@host/dbname
                           copy a SQLite store into PostgreSQL (again: brings it up to date)

Each command creates or updates the virtual environment in .venv from the lock file first (with uv,
itself installed into .tools on first use), so a fresh checkout needs no other set-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
VENV = ROOT / ".venv"
UV_VERSION = "0.13.8"
CHROMIUM = "/usr/bin/chromium"


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def bin_path(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def ensure_uv() -> Path:
    uv = bin_path(TOOLS, "uv")
    if not uv.exists():
        say(f"installing uv {UV_VERSION} into .tools/")
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        subprocess.run([str(bin_path(TOOLS, "python")), "-m", "pip", "install", "--quiet",
                        f"uv=={UV_VERSION}"], check=True)
    return uv


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before the venv exists
        sys.exit("Python 3.11 or newer is needed.")
    uv = ensure_uv()
    say("syncing .venv with uv.lock")
    subprocess.run([str(uv), "sync", "--frozen", "--quiet", "--python", sys.executable], cwd=ROOT, check=True)


def ensure_chromium() -> None:
    """Browser tests drive Debian's Chromium. Install it when missing and we can (root on Debian)."""
    if Path(CHROMIUM).exists() or shutil.which("chromium"):
        return
    if not can_apt():
        say("Chromium is missing and cannot be installed here (needs root on Debian); "
            "the browser tests will report it.")
        return
    say("installing Debian's chromium for the browser tests (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def ensure_servers() -> None:
    """The store tests also run on a throwaway PostgreSQL server, and the proxy test runs the example nginx
    configuration: Debian's binaries, started by the tests themselves. Install Debian's postgresql and
    nginx-light when missing and we can (root on Debian); the services they set up are never used."""
    missing = []
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        missing.append("postgresql")
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        missing.append("nginx-light")
    if not missing:
        return
    if not can_apt():
        say(f"{' and '.join(missing)} missing and cannot be installed here (needs root on Debian); "
            "the tests that need them will report it.")
        return
    say(f"installing Debian's {' and '.join(missing)} for the PostgreSQL and proxy tests (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def can_apt() -> bool:
    return bool(hasattr(os, "geteuid") and os.geteuid() == 0 and Path("/etc/debian_version").exists()
                and shutil.which("apt-get"))


def run_tests(args: list[str]) -> int:
    """pytest with ``args``; with none, the whole suite as two runs side by side: the browser tests (mostly
    waiting on Chromium and the app) and the rest, whose output follows the first's. A run that fails or
    collects nothing fails the whole."""
    pytest = [str(bin_path(VENV, "python")), "-m", "pytest"]
    if args:
        runs = [(subprocess.Popen([*pytest, *args], cwd=ROOT), None)]
    else:
        log = tempfile.NamedTemporaryFile("w+", prefix="chat-browser-tests-", suffix=".log", delete=False)
        say(f"browser tests run alongside the others; their output follows ({log.name})")
        runs = [(subprocess.Popen([*pytest, "-m", "not browser"], cwd=ROOT), None),
                (subprocess.Popen([*pytest, "-m", "browser"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log)]
    failed = False
    for proc, log in runs:
        code = proc.wait()
        if log is not None:
            log.seek(0)
            sys.stdout.write(log.read())
            sys.stdout.flush()
        if code == 5:
            say("pytest collected no tests: that is a failure")
        failed = failed or code != 0
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "run":
        ensure_venv()
        return subprocess.call([str(bin_path(VENV, "streamlit")), "run", "app.py", *rest], cwd=ROOT)
    if command == "test":
        ensure_venv()
        ensure_chromium()
        ensure_servers()
        return run_tests(rest)
    if command == "bench":
        ensure_venv()
        ensure_chromium()
        return subprocess.call([str(bin_path(VENV, "python")), "benchmarks/run_all.py", *rest], cwd=ROOT)
    if command == "migrate-db":
        ensure_venv()
        return subprocess.call([str(bin_path(VENV, "python")), "-m", "chat.store.copy", *rest], cwd=ROOT)
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
