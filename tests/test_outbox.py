"""A message on its way: when it is held for its files, what Send again and Send without files do, and the
settings a reopened conversation gives the chat's controls. No Streamlit: the rules the chat page applies."""

from __future__ import annotations

from attachment_files import png

from chat import attachments, outbox, turns
from chat.config import load_settings


def cannot_read_images(files: tuple) -> str | None:
    return "This model cannot read images." if files else None


def test_a_message_whose_files_can_go_is_not_held():
    out = outbox.submitted("Look", None, (attachments.read("shot.png", png()),), [], check=lambda files: None)
    assert not out.held and out.problem is None and len(out.files) == 1


def test_a_message_with_a_file_the_model_cannot_read_is_held_with_the_reason():
    out = outbox.submitted("Look", "c1", (attachments.read("shot.png", png()),), [], check=cannot_read_images)
    assert out.held and out.problem == "This model cannot read images." and out.conversation_id == "c1"


def test_an_unreadable_file_holds_the_message_and_says_what_send_again_sends_without_it():
    shot = attachments.read("shot.png", png())
    with_words = outbox.submitted("Look", None, (shot,), ["bad.png is damaged."], check=cannot_read_images)
    assert with_words.held
    assert with_words.problem == ("bad.png is damaged. Send again sends the message and the other files "
                                  "without it.")
    words_only = outbox.submitted("Look", None, (), ["bad.png is damaged."], check=cannot_read_images)
    assert words_only.problem == "bad.png is damaged. Send again sends the message without it."
    files_only = outbox.submitted("", None, (shot,), ["bad.png is damaged."], check=cannot_read_images)
    assert files_only.problem == "bad.png is damaged. Send again sends the other files without it."
    nothing = outbox.submitted("", None, (), ["bad.png is damaged."], check=cannot_read_images)
    assert nothing.held and nothing.problem == "bad.png is damaged."


def test_send_again_checks_a_held_message_again_and_lets_it_go_once_its_files_can():
    out = outbox.submitted("Look", None, (attachments.read("shot.png", png()),), [], check=cannot_read_images)
    assert outbox.send_again(out, check=cannot_read_images) is False and out.held  # still the same model
    assert outbox.send_again(out, check=lambda files: None) is True  # another model reads them
    assert not out.held and out.problem is None and len(out.files) == 1


def test_send_without_files_sends_the_words_alone_and_a_message_with_nothing_left_stays_held():
    out = outbox.submitted("Look", None, (attachments.read("shot.png", png()),), [], check=cannot_read_images)
    assert outbox.send_again(out, with_files=False, check=cannot_read_images) is True
    assert out.files == () and out.prompt == "Look" and not out.held
    bare = outbox.submitted("", None, (attachments.read("shot.png", png()),), [], check=cannot_read_images)
    assert outbox.send_again(bare, with_files=False, check=cannot_read_images) is False
    assert bare.held and bare.problem == "There is nothing left to send."


def test_send_again_lets_a_message_the_database_refused_go_as_it_is():
    out = outbox.Outgoing("hello", problem="The database is busy.")
    assert outbox.send_again(out, check=cannot_read_images) is True and out.problem == "The database is busy."


def test_a_reopened_conversation_sets_the_controls_to_what_it_was_last_used_with():
    cfg = load_settings({"OPENAI_API_KEY": "k", "OPENAI_MODELS": "gpt-4o-mini,gpt-4.1"}, {})
    used = {"provider": "openai", "model": "gpt-4.1", "system": "Be terse.", "temperature": 0.3,
            "reasoning_effort": "low", "tools": ["gone"]}
    assert turns.settings_to_restore(used, cfg, served=["openai:gpt-4o-mini", "openai:gpt-4.1"],
                                     model_default="default") == {
        "model": "openai:gpt-4.1", "system": "Be terse.", "temperature": 0.3, "max_tokens": None,
        "reasoning_effort": "low", "thinking": "default", "tools": []}
    restored = turns.settings_to_restore(used, cfg, served=["openai:gpt-4o-mini"], model_default="default")
    assert restored["model"] == cfg.initial_model()  # a model no longer served: the first choice
    assert turns.settings_to_restore({}, cfg, served=[], model_default="default")["system"] == ""
