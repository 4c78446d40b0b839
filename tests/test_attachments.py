"""Attachments: read by their content, checked before sending, stored once, sent as each provider reads them
(the real SDKs over HTTP to the fake provider, the request body checked), counted, exported."""

from __future__ import annotations

import base64
import io
import json

import pytest
from attachment_files import jpeg_with_gps, noisy_png, pdf, png

from chat import attachments, tokens, turns
from chat.attachments import Attachment, AttachmentError, Limits, ModelCannotRead, TooLarge
from chat.config import ModelId
from chat.history.export import conversation_json, conversation_markdown
from chat.pricing import Pricer
from chat.providers.anthropic import AnthropicProvider
from chat.providers.base import ContextTooLong, Message
from chat.providers.openai import OpenAIProvider

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "local": "llama3.2"}


@pytest.fixture
def providers(openai_client, anthropic_client, make_openai_client):
    return {"openai": OpenAIProvider(name="openai", client=openai_client),
            "anthropic": AnthropicProvider(name="anthropic", client=anthropic_client),
            "local": OpenAIProvider(name="local", client=make_openai_client())}


def send_turn(store, providers, name, prompt, files, *, conversation=None):
    conversation = conversation or store.create_conversation(user="alice", settings={})
    turn = turns.send(turns.TurnContext(store, providers[name], Pricer()), conversation, prompt,
                      turns.TurnSettings(ModelId(name, MODELS[name])), files=tuple(files))
    "".join(turn.stream(flush_every=0.0))
    return store.messages(conversation)[-1], conversation


def decoded_image(data_url_or_b64: str):
    from PIL import Image

    raw = data_url_or_b64.split(",", 1)[1] if data_url_or_b64.startswith("data:") else data_url_or_b64
    return Image.open(io.BytesIO(base64.b64decode(raw)))


# ---------------------------------------------------------------- reading a file by its content


def test_an_image_is_known_by_its_bytes_with_its_dimensions():
    item = attachments.read("shot.png", png(64, 48))
    assert (item.media_type, item.kind, item.width, item.height) == ("image/png", "image", 64, 48)
    assert item.sha256 == attachments.read("other-name.png", png(64, 48)).sha256


def test_a_jpeg_named_png_is_taken_as_the_jpeg_it_is():
    assert attachments.read("photo.png", jpeg_with_gps(40, 30)).media_type == "image/jpeg"


def test_a_pdf_named_as_an_image_is_refused_for_not_being_what_its_name_says():
    with pytest.raises(AttachmentError, match="named as a PNG image but its content is a PDF"):
        attachments.read("chart.png", pdf())


def test_a_binary_file_named_txt_is_refused():
    with pytest.raises(AttachmentError, match="not a text file"):
        attachments.read("notes.txt", b"\x00\x01\x02binary\x00")


@pytest.mark.parametrize("name,data", [
    ("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"),
    ("logo.png", b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'></svg>"),
])
def test_svg_is_refused_as_an_image_whatever_its_name(name, data):
    with pytest.raises(AttachmentError, match="SVG"):
        attachments.read(name, data)


@pytest.mark.parametrize("name,data,words", [
    ("empty.png", b"", "empty"), ("blank.md", b"  \n\n", "empty"),
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "could not be read as an image"),
    ("broken.pdf", b"%PDF-1.4\nnot really", "could not be read as a PDF"),
    ("tool.exe", b"MZ\x90\x00", ".exe files are not taken"),
])
def test_empty_damaged_and_unsupported_files_say_so(name, data, words):
    with pytest.raises(AttachmentError, match=words):
        attachments.read(name, data)


def test_a_pdf_is_read_for_its_pages_and_text_only():
    item = attachments.read("report.pdf", pdf("Revenue grew", pages=3))
    assert item.pages == 3
    assert "Revenue grew page 2" in attachments.pdf_text(item)


# ---------------------------------------------------------------- checked before anything is sent


def test_a_file_over_the_per_file_limit_is_refused_with_both_sizes():
    item = attachments.read("big.png", png(200, 200))
    with pytest.raises(TooLarge, match=r"big.png is .* at most"):
        attachments.check([item], limits=Limits(max_file_bytes=100))


def test_files_over_the_per_message_limit_are_refused_together():
    files = [attachments.read(f"{i}.png", png(60 + i, 60)) for i in range(3)]
    limit = sum(f.size for f in files) - 1
    with pytest.raises(TooLarge, match="Send them in two messages"):
        attachments.check(files, limits=Limits(max_message_bytes=limit))


def test_a_model_that_cannot_read_pdfs_is_named_before_sending():
    with pytest.raises(ModelCannotRead, match="claude-x cannot read PDFs; pick another model or attach the text"):
        attachments.check([attachments.read("a.pdf", pdf())], model="claude-x", pdf_input=False)
    attachments.check([attachments.read("a.pdf", pdf())], model="claude-x", pdf_input=None)  # unknown: sent


def test_openai_model_names_say_which_read_images():
    from chat.config import load_settings
    from chat.models import capabilities

    settings = load_settings({"OPENAI_API_KEY": "k"}, {})
    assert capabilities(settings, "openai", "gpt-4o-mini").image_input is True
    assert capabilities(settings, "openai", "gpt-3.5-turbo").image_input is False


# ---------------------------------------------------------------- sent as each provider reads them


def test_openai_responses_request_holds_the_image_and_the_pdf_as_input_parts(store, providers, fake_provider):
    files = [attachments.read("shot.png", png()), attachments.read("report.pdf", pdf())]
    row, _ = send_turn(store, providers, "openai", "What is this?", files)
    assert row["status"] == "complete"
    parts = fake_provider.sent_messages()[-1]["content"]
    kinds = [p["type"] for p in parts]
    assert kinds == ["input_text", "input_image", "input_file"]
    assert parts[1]["image_url"].startswith("data:image/png;base64,")
    assert parts[2]["filename"] == "report.pdf"
    assert base64.b64decode(parts[2]["file_data"].split(",", 1)[1]).startswith(b"%PDF-")


def test_anthropic_request_holds_image_and_document_blocks_before_the_text(store, providers, fake_provider):
    files = [attachments.read("shot.png", png()), attachments.read("report.pdf", pdf())]
    send_turn(store, providers, "anthropic", "What is this?", files)
    blocks = fake_provider.sent_messages()[-1]["content"]
    assert [b["type"] for b in blocks] == ["image", "document", "text"]
    assert blocks[0]["source"]["type"] == "base64" and blocks[0]["source"]["media_type"] == "image/png"
    assert blocks[1]["source"]["media_type"] == "application/pdf" and blocks[1]["title"] == "report.pdf"
    assert base64.b64decode(blocks[1]["source"]["data"]).startswith(b"%PDF-")
    assert blocks[2]["text"] == "What is this?"


def test_a_compatible_server_gets_image_url_parts_and_the_pdf_as_its_text(store, providers, fake_provider):
    files = [attachments.read("shot.png", png()), attachments.read("report.pdf", pdf("Revenue grew"))]
    send_turn(store, providers, "local", "Summarise", files)
    body = fake_provider.last_request["body"]
    parts = body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "File: report.pdf (text of the PDF, 1 pages)" in parts[0]["text"]
    assert "Revenue grew page 1" in parts[0]["text"]
    assert "application/pdf" not in json.dumps(body)


@pytest.mark.parametrize("name", ["openai", "anthropic", "local"])
def test_a_text_file_goes_to_every_provider_as_a_fenced_block_with_its_name(store, providers, fake_provider, name):
    log = attachments.read("app.log", b"ERROR db timeout\n```not a fence end```\n")
    send_turn(store, providers, name, "Why did it fail?", [log])
    text = json.dumps(fake_provider.sent_messages()[-1]["content"])
    assert "File: app.log" in text and "````log" in text and "ERROR db timeout" in text


def test_a_large_photo_is_downscaled_and_sent_without_its_exif_and_gps(store, providers, fake_provider):
    photo = attachments.read("holiday.jpg", jpeg_with_gps(4000, 3000))
    send_turn(store, providers, "anthropic", "Where is this?", [photo])
    sent = decoded_image(fake_provider.sent_messages()[-1]["content"][0]["source"]["data"])
    assert max(sent.size) == attachments.IMAGE_MAX_SIDE["anthropic"]
    assert not sent.getexif() and "exif" not in sent.info
    stored = store.blob(photo.sha256)  # the original is kept as it was
    assert len(stored) == photo.size and b"SecretCam" in stored


def test_an_image_over_a_providers_byte_limit_is_made_to_fit():
    big = attachments.read("noise.png", noisy_png(1500, 1500))  # ~6.7 MB: over Anthropic's 5 MB
    assert big.size > attachments.IMAGE_MAX_BYTES["anthropic"]
    media_type, data = attachments.image_for(big, "anthropic")
    assert len(data) <= attachments.IMAGE_MAX_BYTES["anthropic"] and media_type == "image/jpeg"


# ---------------------------------------------------------------- stored once, kept on resend, exported


def test_the_same_file_attached_twice_is_stored_once_and_a_purge_keeps_what_is_referenced(store, providers):
    shot = attachments.read("shot.png", png())
    _, conversation = send_turn(store, providers, "openai", "one", [shot])
    send_turn(store, providers, "openai", "two", [attachments.read("again.png", png())], conversation=conversation)
    with store.db() as db:
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM attachments").fetchone()[0] == 2
    assert store.purge_blobs() == 0
    store.soft_delete(conversation)
    assert store.purge_blobs() == 0  # soft delete keeps them: an undo brings them back
    assert store.purge_blobs(deleted_conversations=True) == 1
    assert store.messages(conversation)[0]["attachments"] == []


def test_regenerate_and_edit_resend_the_files_of_the_message(store, providers, fake_provider):
    doc = attachments.read("report.pdf", pdf())
    _, conversation = send_turn(store, providers, "anthropic", "Summarise", [doc])
    settings = turns.TurnSettings(ModelId("anthropic", MODELS["anthropic"]))
    ctx = turns.TurnContext(store, providers["anthropic"], Pricer())
    "".join(turns.regenerate(ctx, conversation, settings).stream(flush_every=0))
    assert [b["type"] for b in fake_provider.sent_messages()[-1]["content"]] == ["document", "text"]
    "".join(turns.edit_last(ctx, conversation, "Only page one", settings).stream(flush_every=0))
    assert [b["type"] for b in fake_provider.sent_messages()[-1]["content"]] == ["document", "text"]
    last_user = [r for r in store.messages(conversation) if r["role"] == "user"][-1]
    assert last_user["content"] == "Only page one" and last_user["attachments"][0]["name"] == "report.pdf"


def test_exports_name_the_files_in_markdown_and_carry_them_in_json(store, providers):
    shot = attachments.read("shot.png", png())
    _, conversation = send_turn(store, providers, "openai", "look", [shot, attachments.read("r.pdf", pdf(pages=2))])
    rows = store.messages(conversation, include_superseded=True)
    conv = store.get_conversation(conversation)
    markdown = conversation_markdown(conv, rows)
    assert "- Attached: shot.png · " in markdown and "r.pdf · " in markdown and "2 pages" in markdown
    plain = json.loads(conversation_json(conv, rows))
    assert plain["messages"][0]["attachments"][0]["sha256"] == shot.sha256
    assert "data_base64" not in plain["messages"][0]["attachments"][0]
    full = json.loads(conversation_json(conv, rows, store.blob))
    assert base64.b64decode(full["messages"][0]["attachments"][0]["data_base64"]) == png()


# ---------------------------------------------------------------- counted


def test_image_token_formulas_match_the_providers_documentation():
    assert attachments.openai_image_tokens(1024, 1024) == 765  # 768×768: 4 tiles × 170 + 85
    assert attachments.openai_image_tokens(2048, 4096) == 1105  # 1024×2048 → 768×1536: 6 tiles
    assert attachments.anthropic_image_tokens(1000, 1000) == 1334  # 1,000,000 / 750


def test_a_stopped_replys_input_estimate_includes_its_image(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=200, tokens_per_second=50)
    conversation = store.create_conversation(user="alice", settings={})
    settings = turns.TurnSettings(ModelId("openai", "gpt-4o-mini"))
    photo = attachments.read("big.png", png(1024, 1024))
    turn = turns.send(turns.TurnContext(store, providers["openai"], Pricer()), conversation, "hi", settings,
                      files=(photo,))
    stream = turn.stream(flush_every=0.0)
    next(s for s in stream if s)
    stream.close()
    row = store.messages(conversation)[-1]
    assert row["status"] == "stopped" and not row["input_exact"]
    bare = tokens.estimate_input([Message("user", "hi")], "gpt-4o-mini").tokens
    assert row["input_tokens"] == bare + 765


def test_a_newest_message_too_large_with_its_files_says_so_before_sending(store, providers, fake_provider):
    conversation = store.create_conversation(user="alice", settings={})
    settings = turns.TurnSettings(ModelId("anthropic", MODELS["anthropic"]))
    files = (attachments.read("r.pdf", pdf(pages=5)),)  # ≈ 11,250 tokens
    turn = turns.send(turns.TurnContext(store, providers["anthropic"], Pricer(), context_window=8_000), conversation,
                      "read", settings, files=files)
    assert isinstance(turn.error, ContextTooLong)
    assert "with its 1 attached file" in str(turn.error)
    assert fake_provider.requests == []


def test_an_attachment_without_its_bytes_is_loaded_from_the_store(store):
    shot = attachments.read("shot.png", png())
    conversation = store.create_conversation(user="alice", settings={})
    store.add_user_message(conversation, "x", [shot])
    bare = Attachment.from_meta(store.messages(conversation)[0]["attachments"][0])
    (loaded,) = turns.with_file_data(store, [Message("user", "x", (bare,))])
    assert loaded.attachments[0].data == png()


# ---------------------------------------------------------------- both engines


def test_files_round_trip_through_the_store_on_both_engines(engine_store):
    """Stored once by sha256 (bytea on PostgreSQL), listed with their messages in order, read back byte for
    byte, reattached by hash, purged only when nothing refers to them."""
    store = engine_store
    image = attachments.read("chart.png", png())
    doc = attachments.read("report.pdf", pdf(pages=2))
    conversation = store.create_conversation(user="ann")
    first = store.add_user_message(conversation, "", [image, doc])
    assert store.get_conversation(conversation)["title"] == "chart.png, report.pdf"
    assert first["attachments"] == [image.meta(), doc.meta()]
    again = attachments.Attachment(image.name, image.media_type, image.size, image.sha256)  # no bytes: by hash
    store.add_user_message(conversation, "the same chart", [again])
    listed = store.messages(conversation)
    assert [[m["name"] for m in row["attachments"]] for row in listed] == [["chart.png", "report.pdf"], ["chart.png"]]
    assert store.blob(image.sha256) == image.data and store.blob(doc.sha256) == doc.data
    assert isinstance(store.blob(doc.sha256), bytes)
    with store.db() as db:
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 2
    with pytest.raises(ValueError, match="none stored"):
        store.add_user_message(conversation, "lost", [attachments.Attachment("x.png", "image/png", 3, "0" * 64)])
    assert store.purge_blobs() == 0
    store.soft_delete(conversation)
    assert store.purge_blobs() == 0
    assert store.purge_blobs(deleted_conversations=True) == 2
    with pytest.raises(LookupError):
        store.blob(image.sha256)
