"""Attaching a 10 MB image: how much later does the first token come?

The issue's goal: no more than the upload and one resize. Measured server-side with the real openai SDK over
HTTP to the fake provider (Responses API and Anthropic) and a real SQLite file, per run:
  - baseline: Enter → first token of a turn without files;
  - with the image: reading it (content check, dimensions, sha256), saving it, then Enter → first token,
    with the resize cache cleared so every run pays its one resize;
  - one resize alone (the image fitted and re-encoded for the provider), and the upload's own cost is left
    to the browser (not measured here).

    .venv/bin/python benchmarks/attach_bench.py [--runs 5]
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import anthropic  # noqa: E402
import openai  # noqa: E402
from PIL import Image  # noqa: E402

from chat import attachments, turns  # noqa: E402
from chat.config import ModelId  # noqa: E402
from chat.pricing import Pricer  # noqa: E402
from chat.providers.anthropic import AnthropicProvider  # noqa: E402
from chat.providers.openai import OpenAIProvider  # noqa: E402
from chat.store import open_store  # noqa: E402
from fake_provider import DEFAULT_KEY, FakeProvider  # noqa: E402


def ten_megabyte_photo() -> bytes:
    """A 4,000 × 3,000 JPEG of noise at quality 95 (noise does not compress: about 10 MB, like a phone photo)."""
    image = Image.frombytes("RGB", (4000, 3000), os.urandom(4000 * 3000 * 3)).resize((4000, 3000))
    quality = 95
    while True:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() <= 11 * 1024 * 1024 or quality <= 60:
            return buffer.getvalue()
        quality -= 5


def first_token(store, provider, model, files=()) -> float:
    conversation = store.create_conversation(user="bench", settings={})
    start = time.perf_counter()
    turn = turns.send(turns.TurnContext(store, provider, Pricer()), conversation, "Describe it",
                      turns.TurnSettings(model), files=tuple(files))
    stream = turn.stream(flush_every=0.0)
    for chunk in stream:
        if chunk:
            elapsed = time.perf_counter() - start
            stream.close()
            return elapsed
    raise RuntimeError("no text")


def main(argv: list[str]) -> None:
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 5
    photo = ten_megabyte_photo()
    print(f"image: 4000×3000 JPEG, {len(photo) / 1024 / 1024:.1f} MB; {runs} runs each, medians")
    with FakeProvider(api_key=DEFAULT_KEY) as server, tempfile.TemporaryDirectory() as tmp:
        server.set_scenario(None, words=20)
        store = open_store(Path(tmp) / "bench.db")
        clients = {"openai": OpenAIProvider("openai", openai.OpenAI(base_url=server.url + "/v1", api_key=DEFAULT_KEY,
                                                                    max_retries=0, timeout=60)),
                   "anthropic": AnthropicProvider("anthropic", anthropic.Anthropic(
                       base_url=server.url, api_key=DEFAULT_KEY, max_retries=0, timeout=60))}
        models = {"openai": ModelId("openai", "gpt-4o-mini"), "anthropic": ModelId("anthropic", "claude-haiku-4-5")}
        api = {"openai": "responses", "anthropic": "anthropic"}
        for name, provider in clients.items():
            first_token(store, provider, models[name])  # warm: SDK parsers, connections
            base, read, resize, with_file = [], [], [], []
            for _ in range(runs):
                base.append(first_token(store, provider, models[name]))
                t = time.perf_counter()
                item = attachments.read("photo.jpg", photo)
                read.append(time.perf_counter() - t)
                attachments._prepared.cache_clear()
                t = time.perf_counter()
                attachments.image_for(item, api[name])
                resize.append(time.perf_counter() - t)
                attachments._prepared.cache_clear()
                with_file.append(first_token(store, provider, models[name], [item]))
            b, r, z, w = (statistics.median(v) * 1000 for v in (base, read, resize, with_file))
            print(f"{name:9} first token without files {b:6.0f} ms | with the 10 MB image {w:6.0f} ms "
                  f"(+{w - b:.0f} ms) | read + check {r:4.0f} ms | one resize {z:4.0f} ms | "
                  f"delay / (one resize) = {(w - b) / z:.2f}")
        store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
