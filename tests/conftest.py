"""Shared fixtures. The fake provider server runs once per session; each test gets it reset."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the project root on sys.path
    sys.path.insert(0, str(ROOT))

from fake_provider import DEFAULT_KEY, FakeProvider  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(scope="session")
def fake_provider_server():
    """The one fake provider of the session; use ``fake_provider`` to get it reset."""
    with FakeProvider(api_key=DEFAULT_KEY) as server:
        yield server


@pytest.fixture
def fake_provider(fake_provider_server):
    """The fake provider server, with its scenarios and log reset (streams of earlier tests cut off)."""
    fake_provider_server.reset()
    yield fake_provider_server
    fake_provider_server.reset()


@pytest.fixture
def store(tmp_path):
    """A Store on a real SQLite file in the test's directory (modules that need more define their own)."""
    from chat.store import open_store

    s = open_store(tmp_path / "chat.db")
    yield s
    s.close()


# ---------------------------------------------------------------- both engines

PG_TEMPLATE = "chat_template"


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL server for the test session (tests/pg_support.py), with a migrated template
    database each test copies. Not installed: skipped with the reason on a developer's machine, failed under
    CI (CI=true), where `dev.py test` installs it. Installed but cannot start: the tests fail."""
    from pg_support import PostgresServer, pg_bin

    if pg_bin() is None:
        reason = "PostgreSQL is not installed; `python3 dev.py test` installs Debian's postgresql (root on Debian)."
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with PostgresServer() as server:
        from chat.store import open_store

        server.execute(f"CREATE DATABASE {PG_TEMPLATE}")
        open_store(server.url_of(PG_TEMPLATE), pool_size=1).close()
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """Where a store's data lives, once per engine: a SQLite file in the test's directory, or a fresh migrated
    PostgreSQL database on the session's server (its URL)."""
    if request.param == "sqlite":
        return tmp_path / "chat.db"
    return request.getfixturevalue("pg_server").new_database(template=PG_TEMPLATE)


@pytest.fixture
def engine_store(store_target):
    """A Store on ``store_target``: each test that uses it runs on both engines."""
    from chat.store import open_store

    s = open_store(store_target)
    yield s
    s.close()


@pytest.fixture
def make_openai_client(fake_provider):
    """A factory of real ``openai.OpenAI`` clients pointed at the fake provider, closed after the test.
    Defaults: key ``test-key``, no SDK retries, 5 s timeout; keyword arguments override them."""
    import openai

    clients = []

    def make(**kwargs):
        options = {"base_url": fake_provider.url + "/v1", "api_key": DEFAULT_KEY, "max_retries": 0,
                   "timeout": 5.0, **kwargs}
        client = openai.OpenAI(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_anthropic_client(fake_provider):
    """A factory of real ``anthropic.Anthropic`` clients pointed at the fake provider (as above)."""
    import anthropic

    clients = []

    def make(**kwargs):
        options = {"base_url": fake_provider.url, "api_key": DEFAULT_KEY, "max_retries": 0, "timeout": 5.0,
                   **kwargs}
        client = anthropic.Anthropic(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def openai_client(make_openai_client):
    return make_openai_client()


@pytest.fixture
def anthropic_client(make_anthropic_client):
    return make_anthropic_client()


# ---------------------------------------------------------------- AppTest: the app's environment
APP_ENV_NAMES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CHAT_ENDPOINTS",
                 "CHAT_DEFAULT_MODEL", "OPENAI_MODELS", "ANTHROPIC_MODELS", "CHAT_DB", "CHAT_PRICES", "CHAT_AUTH",
                 "CHAT_AUTH_HEADER", "CHAT_ANALYSTS", "CHAT_DAILY_LIMIT_USD", "CHAT_TIMEOUT", "CHAT_MAX_RETRY_WAIT",
                 "CHAT_FIRST_TOKEN_TIMEOUT", "CHAT_HIDE_MODELS", "CHAT_CAPABILITIES", "CHAT_ATTACH_MAX_FILE_MB",
                 "CHAT_ATTACH_MAX_MESSAGE_MB")


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    """No provider configured, a fresh database path, no SDK retries; Streamlit's caches cleared around
    the test (settings, store and clients are cached per process). Yields the database path."""
    import streamlit as st

    for name in APP_ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHAT_DB", str(tmp_path / "chat.db"))
    monkeypatch.setenv("CHAT_MAX_RETRIES", "0")
    st.cache_resource.clear()
    yield tmp_path / "chat.db"
    st.cache_resource.clear()


@pytest.fixture
def app_env(bare_env, monkeypatch, fake_provider):
    """OpenAI and Anthropic both configured against the fake provider; openai:gpt-4o-mini by default."""
    import streamlit as st

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_provider.url)
    monkeypatch.setenv("CHAT_DEFAULT_MODEL", "openai:gpt-4o-mini")
    st.cache_resource.clear()
    return bare_env


def pytest_runtest_setup(item):
    """Browser tests need Debian's Chromium. Without it they are skipped with the reason on a developer's
    machine, and fail under CI (CI=true), where `dev.py test` installs it: never a silent pass."""
    if item.get_closest_marker("browser") is None:
        return
    from e2e_support import CHROMIUM

    if not Path(CHROMIUM).exists():
        reason = f"Chromium is not installed at {CHROMIUM}; `python3 dev.py test` installs it (root on Debian)."
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
