"""The Thinking section in a real headless Chromium against `streamlit run`: it fills live while the model
thinks, then collapses to its duration once the answer starts."""

from __future__ import annotations

import pytest

from e2e_support import running_stack, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("thinking"), CHAT_DEFAULT_MODEL="openai:gpt-5-mini") as parts:
        yield parts


def test_the_thinking_section_fills_live_then_collapses_to_its_duration(stack):
    provider, app, browser, _ = stack
    provider.reset()
    provider.set_scenario(None, words=5, tokens_per_second=10,
                          reasoning=" ".join(f"thought{i}" for i in range(40)))
    page = browser.new_page()
    try:
        page.goto(app.url)
        wait_idle(page)
        # the page samples the Thinking section itself every 50 ms: (its title, reasoning words shown)
        page.evaluate("""() => {
          window.__samples = [];
          window.__timer = setInterval(() => {
            const msgs = document.querySelectorAll('[data-testid="stChatMessage"]');
            const last = msgs[msgs.length - 1];
            const section = last && last.querySelector('[data-testid="stExpander"]');
            if (!section || last.innerText.includes('Echo:')) return;
            const title = section.querySelector('summary').innerText;
            window.__samples.push([title, (section.innerText.match(/thought\\d+/g) || []).length]);
          }, 50);
        }""")
        box = page.locator("[data-testid='stChatInput'] textarea")
        box.fill("think first")
        box.press("Enter")
        page.locator("[data-testid='stChatMessage']", has_text="Echo: think first").first.wait_for(timeout=30_000)
        samples = page.evaluate("() => { clearInterval(window.__timer); return window.__samples; }")
        seen = [(title, n) for title, n in samples if n]
        assert seen and all("Thinking" in title for title, _ in seen), samples  # open, titled "Thinking…"
        counts = [n for _, n in seen]
        assert len(set(counts)) >= 3 and counts == sorted(counts), counts  # filled as the reasoning came
        page.locator("[data-testid='stChatMessage']", has_text="5 out").first.wait_for()
        wait_idle(page)
        done = page.locator("[data-testid='stChatMessage'] [data-testid='stExpander']").last
        assert "Thought for " in done.locator("summary").inner_text()
        assert not done.locator("[data-testid='stExpanderDetails']").is_visible()  # collapsed
        done.locator("summary").click()  # and expandable afterwards
        page.locator("[data-testid='stExpanderDetails']", has_text="thought39").first.wait_for()
    finally:
        page.close()
