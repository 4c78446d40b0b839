"""The preamble every page shares (ui/page.py), run once by app.py before the page: who is signed in is said
once at the top of each page's sidebar, and nobody signed in sees none of a page."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

APP = "../app.py"
PAGES = ["app_pages/chat.py", "app_pages/compare.py", "app_pages/history.py"]


def open_page(page: str, user: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.user = user
    at.switch_page(page)
    return at.run()


@pytest.fixture
def oidc(app_env, monkeypatch):
    monkeypatch.setenv("CHAT_AUTH", "oidc")
    return app_env


@pytest.mark.parametrize("page", PAGES)
def test_each_page_says_once_who_is_signed_in(oidc, page):
    at = open_page(page, {"is_logged_in": True, "email": "ann@example.com"})
    assert not at.exception, at.exception
    said = [c.value for c in at.sidebar.caption if c.value.startswith("Signed in as")]
    assert said == ["Signed in as ann@example.com"]
    assert [b.label for b in at.sidebar.button].count("Log out") == 1


@pytest.mark.parametrize("page", PAGES)
def test_nobody_signed_in_sees_only_the_login(oidc, page):
    at = open_page(page, {"is_logged_in": False})
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.chat_input and not at.text_area and not at.text_input and not at.dataframe
