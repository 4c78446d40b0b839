"""Attachments on the pages under AppTest: the chat input takes files, a file that cannot go is held with the
message (nothing lost, nothing sent), and Compare sends the same files to every target."""

from __future__ import annotations

import json

from attachment_files import pdf, png
from streamlit.testing.v1 import AppTest

from chat import attachments, turns
from chat.compare.runs import start_run
from chat.compare.targets import CompareError
from chat.config import ModelId
from chat.pricing import Pricer
from chat.providers.anthropic import AnthropicProvider
from chat.providers.openai import OpenAIProvider
from chat.store import Filters, open_store

APP = "../app.py"


def images_in(node) -> list:
    """The st.image elements anywhere under ``node`` (thumbnails sit in columns)."""
    found = []
    for child in getattr(node, "children", {}).values():
        if type(child).__name__ == "Image":
            found.append(child)
        found += images_in(child)
    return found


def open_cid(at: AppTest) -> str | None:
    value = at.query_params.get("c")
    return value[0] if isinstance(value, list) else value


def test_a_message_with_an_image_and_a_pdf_is_sent_stored_and_shown_with_thumbnail_and_chip(app_env, fake_provider):
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.chat_input[0].upload("shot.png", png(), "image/png").upload("report.pdf", pdf(pages=2), "application/pdf")
    at.chat_input[0].set_value("What do these say?").run()
    assert not at.exception, at.exception
    user = at.chat_message[0]
    assert user.markdown[-1].value == "What do these say?"
    assert len(images_in(user)) == 1
    assert any("report.pdf · " in c.value.replace("\\", "") and "2 pages" in c.value for c in user.caption)
    rows = open_store(app_env).messages(open_cid(at))
    assert [a["name"] for a in rows[0]["attachments"]] == ["shot.png", "report.pdf"]
    kinds = [p["type"] for p in fake_provider.sent_messages()[-1]["content"]]
    assert kinds == ["input_text", "input_image", "input_file"]


def test_a_pdf_the_model_cannot_read_is_held_with_the_message_and_sent_after_switching_model(
        app_env, fake_provider, monkeypatch):
    monkeypatch.setenv("CHAT_CAPABILITIES", json.dumps({"openai:gpt-4o-mini": {"pdf_input": False}}))
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.chat_input[0].upload("report.pdf", pdf(), "application/pdf").set_value("Summarise").run()
    assert not at.exception, at.exception
    assert "gpt-4o-mini cannot read PDFs; pick another model or attach the text" in at.error[0].value
    assert fake_provider.requests == [] and open_cid(at) is None  # nothing saved, nothing sent
    assert any("report.pdf" in c.value.replace("\\", "") for c in at.chat_message[0].caption)
    at.sidebar.selectbox[0].set_value("anthropic:claude-haiku-4-5").run()
    at.button(key="send_again").click().run()
    assert not at.exception, at.exception
    rows = open_store(app_env).messages(open_cid(at))
    assert rows[0]["content"] == "Summarise" and rows[0]["attachments"][0]["name"] == "report.pdf"
    assert [b["type"] for b in fake_provider.sent_messages()[-1]["content"]] == ["document", "text"]


def test_a_file_that_is_not_what_its_name_says_is_named_and_the_rest_stays_ready(app_env, fake_provider):
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.chat_input[0].upload("chart.png", pdf(), "image/png").set_value("Look").run()
    assert "chart.png is named as a PNG image but its content is a PDF" in at.error[0].value
    assert fake_provider.requests == []
    at.button(key="send_again").click().run()
    assert open_store(app_env).messages(open_cid(at))[0]["content"] == "Look"


def test_compare_sends_the_same_files_to_every_target_and_stores_them_once(store, openai_client, anthropic_client,
                                                                          fake_provider):
    providers = {"openai": OpenAIProvider(name="openai", client=openai_client),
                 "anthropic": AnthropicProvider(name="anthropic", client=anthropic_client)}
    targets = [turns.TurnSettings(ModelId("openai", "gpt-4o-mini")),
               turns.TurnSettings(ModelId("anthropic", "claude-haiku-4-5"))]
    files = [attachments.read("shot.png", png())]
    run = start_run(turns.TurnContexts(store, providers, Pricer(), user="alice"), "Describe", targets, files=files)
    for column in run.columns:
        "".join(column.turn.stream(flush_every=0.0))
    bodies = [json.dumps(r["body"]) for r in fake_provider.requests]
    assert any('"input_image"' in b for b in bodies) and any('"type": "image"' in b for b in bodies)
    with store.db() as db:
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 1


def test_compare_refuses_files_a_target_cannot_read_before_saving_anything(store, openai_client):
    from types import SimpleNamespace

    import pytest

    providers = {"openai": OpenAIProvider(name="openai", client=openai_client)}
    targets = [turns.TurnSettings(ModelId("openai", "gpt-4o-mini")),
               turns.TurnSettings(ModelId("openai", "gpt-3.5-turbo"))]
    with pytest.raises(CompareError, match="gpt-3.5-turbo cannot read images"):
        start_run(turns.TurnContexts(store, providers, Pricer(), user="alice",
                                     capabilities=lambda m: SimpleNamespace(image_input=m.model != "gpt-3.5-turbo",
                                                                            pdf_input=None)),
                  "Describe", targets, files=[attachments.read("shot.png", png())])
    assert store.list_conversations(Filters(user="alice")) == []


def test_regenerate_with_a_model_that_cannot_read_the_conversations_image_says_so_and_sends_nothing(
        app_env, fake_provider, monkeypatch):
    monkeypatch.setenv("CHAT_CAPABILITIES", json.dumps({"openai:gpt-3.5-turbo": {"context_window": 16000}}))
    monkeypatch.setenv("OPENAI_MODELS", "gpt-4o-mini,gpt-3.5-turbo")
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.chat_input[0].upload("shot.png", png(), "image/png").set_value("Describe").run()
    assert not at.exception, at.exception
    sent = len(fake_provider.requests)
    at.sidebar.selectbox[0].set_value("openai:gpt-3.5-turbo").run()
    next(b for b in at.button if b.label == "Regenerate").click().run()
    assert "gpt-3.5-turbo cannot read images" in at.error[0].value
    assert len(fake_provider.requests) == sent
