"""Attachments in a real headless Chromium: an image and a PDF attached through the chat input's own file
input, seen as a thumbnail and a chip, sent, and found again after a refresh."""

from __future__ import annotations

import json
import time

import pytest
from attachment_files import pdf, png

from e2e_support import running_stack, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("browser-attach")) as parts:
        yield parts


def test_an_image_and_a_pdf_attached_in_the_chat_input_show_as_thumbnail_and_chip_and_survive_a_refresh(stack):
    provider, app, browser, _ = stack
    provider.reset()
    page = browser.new_page()
    try:
        page.goto(app.url)
        wait_idle(page)
        page.wait_for_selector("[data-testid='stChatInput'] textarea")
        uploaded = []
        page.on("response", lambda r: uploaded.append(r.url) if "/_stcore/upload_file/" in r.url else None)
        page.locator("[data-testid='stChatInput'] input[type='file']").set_input_files([
            {"name": "shot.png", "mimeType": "image/png", "buffer": png(120, 80)},
            {"name": "report.pdf", "mimeType": "application/pdf", "buffer": pdf(pages=3)},
        ])
        deadline = time.monotonic() + 20
        while len(uploaded) < 2 and time.monotonic() < deadline:  # both files are on the server
            page.wait_for_timeout(50)
        box = page.locator("[data-testid='stChatInput'] textarea")
        box.fill("What is in these?")
        page.locator("[data-testid='stChatInputSubmitButton']").wait_for()
        page.wait_for_function(  # the uploads have finished: the send button takes the message
            "() => !document.querySelector(\"[data-testid='stChatInputSubmitButton']\").disabled")
        box.press("Enter")
        provider.wait_for("complete", timeout=20)

        def check() -> None:
            user = page.locator("[data-testid='stChatMessage']", has_text="What is in these?").first
            user.wait_for()
            user.locator("img").first.wait_for()
            assert user.locator("img").count() >= 1
            chip = user.get_by_text("report.pdf", exact=False).first
            chip.wait_for()
            assert "3 pages" in chip.inner_text()

        check()
        body = json.dumps(provider.events("request")[-1]["body"])
        assert '"input_image"' in body and '"input_file"' in body and "report.pdf" in body
        page.reload()
        wait_idle(page)
        check()
    finally:
        page.close()
