"""Starting real processes for browser tests and benchmarks: the fake provider, `streamlit run`, Chromium.

Each process is started on a free loopback port and stopped by its process id (its whole process group)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last}")


class Proc:
    """A child process in its own process group, stopped by pid."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, log: Path | None = None):
        self.log_path = log
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        self._out = out
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self._out, "close"):
            self._out.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class FakeProviderProcess(Proc):
    """tests/fake_provider.py as a subprocess, driven over its /_control endpoints."""

    def __init__(self, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([sys.executable, str(ROOT / "tests" / "fake_provider.py"), "--port", str(self.port)],
                         log=log)
        wait_http(self.url + "/_control/log", proc=self.proc)

    def _post(self, path: str, payload: dict) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
        return json.loads(body) if body else {}

    def set_scenario(self, model: str | None = None, **knobs) -> None:
        self._post("/_control/scenario", {"model": model, **knobs})

    def reset(self) -> None:
        self._post("/_control/reset", {})

    def log(self) -> list[dict]:
        with urllib.request.urlopen(self.url + "/_control/log", timeout=5) as r:
            data = json.loads(r.read())
        return data["events"] if isinstance(data, dict) else data

    def events(self, kind: str) -> list[dict]:
        return [e for e in self.log() if e.get("kind") == kind]

    def wait_for(self, kind: str, timeout: float = 5.0, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(kind)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise TimeoutError(f"no {kind!r} event within {timeout} s; log: {self.log()[-5:]}")


def app_env(provider_url: str, db_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_", "CHAT_"))}
    env.update({
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": provider_url + "/v1",
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": provider_url,
        "CHAT_DB": str(db_path),
        "CHAT_DEFAULT_MODEL": "openai:gpt-4o-mini",
        "CHAT_MAX_RETRIES": "0",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    })
    env.update(extra)
    return env


class AppProcess(Proc):
    """`streamlit run app.py` on a free loopback port."""

    def __init__(self, env: dict[str, str], log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
                          "--server.address", "127.0.0.1", "--server.headless", "true"], env=env, log=log)
        wait_http(self.url + "/_stcore/health", timeout=60, proc=self.proc)


def launch_chromium(playwright, user_data_dir: Path):
    """Debian's Chromium through Playwright (never `playwright install`)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
    )


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait until the app's script run has finished."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def open_sessions(browser, url: str, count: int) -> list:
    """`count` tabs on `url`, each its own session, returned once every one shows the chat input."""
    pages = []
    for _ in range(count):
        page = browser.new_page()
        page.goto(url)
        pages.append(page)
    for page in pages:
        wait_idle(page)
        page.wait_for_selector("[data-testid='stChatInput'] textarea")
    return pages


@contextmanager
def running_stack(tmp: Path, **env: str):
    """The fake provider and the app as real processes, and a Chromium, as (provider, app, browser, db path);
    all stopped by pid on leaving. `env` adds to the app's environment."""
    from playwright.sync_api import sync_playwright

    provider = FakeProviderProcess(log=tmp / "provider.log")
    db_path = tmp / "chat.db"
    app = None
    try:
        app = AppProcess(app_env(provider.url, db_path, **env), log=tmp / "app.log")
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp / "profile")
            try:
                yield provider, app, browser, db_path
            finally:
                browser.close()
    finally:
        if app is not None:
            app.stop()
        provider.stop()
