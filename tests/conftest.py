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
