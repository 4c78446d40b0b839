"""A cold server: what its first page run loads, what waits until that run has ended, and what a first reply
loads for itself. Each case runs in a fresh interpreter, the way a server process starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LATER = ("pandas", "numpy", "pyarrow", "openai", "anthropic")


def run(code: str, tmp_path: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CHAT_DB": str(tmp_path / "chat.db"),
           "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "ANTHROPIC_API_KEY": "k",
           "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CHAT_DEFAULT_MODEL": "openai:gpt-4o-mini",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_chat_pages_first_run_leaves_pandas_and_the_sdks_until_it_has_ended(tmp_path):
    # The page is run from a script that notes, as that run's last step, what is loaded by then; the start-up
    # loading (started by the page) waits for the run to end, so it has loaded nothing yet.
    code = f"""
import json, sys
from streamlit.testing.v1 import AppTest
from server import startup
script = '''
import runpy, sys
import streamlit as st
try:
    runpy.run_path("app_pages/chat.py", run_name="__main__")
finally:
    st.session_state["loaded"] = [m for m in {LATER!r} if m in sys.modules]
'''
at = AppTest.from_string(script, default_timeout=60).run()
assert not at.exception, at.exception
assert at.chat_input, "the page drew its input"
during = at.session_state["loaded"]
assert startup.first_reply_loaded.wait(60)
print(json.dumps({{"during": during, "after": [m for m in {LATER!r} if m in sys.modules]}}))
"""
    seen = run(code, tmp_path)
    assert seen["during"] == []
    assert {"pandas", "numpy", "pyarrow", "openai"} <= set(seen["after"])  # then: what a first reply needs


def test_a_provider_built_for_a_reply_brings_what_drawing_its_reply_needs(tmp_path):
    # Streamlit's first st.write_stream imports pandas: loaded before the reply's request goes out, not while
    # its text arrives (which would then be drawn in one piece).
    code = """
import json, sys
from ui import resources
before = [m for m in ("pandas", "openai") if m in sys.modules]
resources.providers()["openai"]
print(json.dumps({"before": before, "after": [m for m in ("pandas", "openai") if m in sys.modules]}))
"""
    seen = run(code, tmp_path)
    assert seen == {"before": [], "after": ["pandas", "openai"]}


def test_a_page_run_does_not_wait_for_a_listing_while_the_sdks_are_still_loading(tmp_path):
    # The clients are held (an SDK import on a cold server) until the page's look-up has returned; a look-up
    # that waited for the listing would still be blocked when the test gives up on it.
    code = """
import json, os, threading
from chat.config import load_settings
from chat.models import Catalog
held = threading.Event()
catalog = Catalog(load_settings(os.environ, {}), lambda: (held.wait(), {})[1], wait=600)
out = {}
look = threading.Thread(target=lambda: out.update(models=catalog.models()), daemon=True)
look.start()
look.join(60)
out["returned"] = not look.is_alive()
held.set()
print(json.dumps(out))
"""
    seen = run(code, tmp_path)
    assert seen["returned"]
    assert "openai:gpt-4o-mini" in seen["models"]  # the configured list meanwhile


def test_what_a_page_draws_of_a_models_capabilities_leaves_the_price_data_unloaded(tmp_path):
    # genai-prices' data (the context window) takes most of a second to load; a turn asks for it, the
    # settings drawn on the first paint do not.
    code = """
import json, os, sys
from chat.config import load_settings
from chat.models import capabilities
settings = load_settings(os.environ, {})
drawn = capabilities(settings, "openai", "gpt-4o-mini", window=False)
out = {"drawn": [drawn.context_window, drawn.reasoning_effort, "genai_prices" in sys.modules]}
print(json.dumps({**out, "turn": capabilities(settings, "openai", "gpt-4o-mini").context_window}))
"""
    assert run(code, tmp_path) == {"drawn": [None, False, False], "turn": 128_000}
