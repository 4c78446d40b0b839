"""Configuration fails closed on every page (AppTest): a broken secrets file or a bad value stops the page
with a message naming the problem, instead of starting with weaker settings than were written."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

APP = "../app.py"
PAGES = ["app_pages/chat.py", "app_pages/compare.py", "app_pages/history.py"]
BROKEN = 'CHAT_AUTH = "header"\nCHAT_DAILY_LIMIT_USD = 5\nOPENAI_API_KEY = sk-unquoted\n'


@pytest.fixture
def project(app_env, monkeypatch, tmp_path):
    """The app run from a fresh working directory (Streamlit reads `.streamlit/secrets.toml` there and in
    ~/.streamlit, here an empty home). Yields the project's secrets file, not yet written."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".streamlit").mkdir()
    st.cache_resource.clear()
    yield tmp_path / ".streamlit" / "secrets.toml"
    st.cache_resource.clear()


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def main_text(at: AppTest) -> str:
    return " ".join(e.value for e in at.main.error)


@pytest.mark.parametrize("page", PAGES)
def test_a_syntax_error_in_secrets_stops_every_page_naming_the_file_and_line(project, page):
    project.write_text(BROKEN)
    at = run_page(page)
    message = main_text(at)
    assert message.startswith("The configuration has a problem:")
    assert str(project) in message and "line 3" in message
    assert not at.chat_input and not at.text_area and not at.text_input and not at.dataframe


def test_header_mode_in_a_broken_secrets_file_lets_no_anonymous_request_in(project):
    project.write_text(BROKEN)  # it asks for header mode; the request below carries no header
    at = run_page(PAGES[0])
    assert "The configuration has a problem" in main_text(at)
    assert not at.chat_input and not at.sidebar.selectbox


def test_header_mode_from_the_environment_with_a_broken_secrets_file_still_stops(project, monkeypatch):
    monkeypatch.setenv("CHAT_AUTH", "header")
    project.write_text("[endpoints.box\n")
    at = run_page(PAGES[2])
    assert "line 1" in main_text(at) and not at.dataframe and not at.text_input


def test_the_same_app_starts_once_the_file_is_fixed_or_removed(project):
    project.write_text(BROKEN)
    assert "The configuration has a problem" in main_text(run_page(PAGES[0]))
    project.unlink()  # environment only: fine
    at = run_page(PAGES[0])
    assert not at.error and at.chat_input


@pytest.mark.parametrize(("name", "value"), [("CHAT_DAILY_LIMIT_USD", "nan"), ("CHAT_TIMEOUT", "0"),
                                             ("CHAT_MAX_RETRIES", "-3"), ("CHAT_PRICES", "[1,2]")])
def test_a_bad_value_stops_the_page_at_start_naming_the_setting(app_env, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    at = run_page(PAGES[0])
    assert "configuration has a problem" in main_text(at) and name in main_text(at)
    assert not at.chat_input
