"""What Anthropic prompt caching saves on a 20-turn conversation (cost, not time).

    python benchmarks/cache_bench.py [--model claude-sonnet-4-5] [--turns 20]

The same conversation is run twice through chat.turns with the real anthropic SDK against the fake provider
(tests/fake_provider.py, whose prompt cache counts words as tokens): once as the app sends it (a long
follow-up asks for automatic caching) and once with caching off (the baseline, same run). Every turn is
priced by chat.pricing with genai-prices' real Anthropic prices, cache reads and writes at their own rates.
Each user message is ~150 words and each reply ~200, so the conversation ends near 7,000 tokens of history.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import anthropic  # noqa: E402

from chat import turns  # noqa: E402
from chat.config import parse_model_id  # noqa: E402
from chat.display import format_cost  # noqa: E402
from chat.pricing import Pricer  # noqa: E402
from chat.providers.anthropic import AnthropicProvider  # noqa: E402
from chat.store import Store, open_store  # noqa: E402
from fake_provider import FakeProvider  # noqa: E402

QUESTION = ("Here is the next part of the design document we are reviewing together; read it and tell me what "
            "changes. ") + " ".join(f"clause{i} says the service must handle case {i} gracefully" for i in range(18))


def conversation(server: FakeProvider, store: Store, model: str, turn_count: int, *, cache: bool) -> dict:
    server.reset()
    server.set_scenario(None, words=200)
    client = anthropic.Anthropic(base_url=server.url, api_key="test-key", max_retries=0)
    provider = AnthropicProvider("anthropic", client, prompt_cache=cache)
    settings = turns.TurnSettings(model_id=parse_model_id(f"anthropic:{model}"))
    cid = store.create_conversation(user="bench")
    for i in range(turn_count):
        turn = turns.send(turns.TurnContext(store, provider, Pricer()), cid, f"Turn {i + 1}. {QUESTION}", settings)
        for _ in turn.stream():
            pass
        assert turn.record["status"] == "complete", turn.record
    client.close()
    replies = [m for m in store.messages(cid) if m["role"] == "assistant"]
    return {
        "cost": sum(m["cost"] for m in replies),
        "input": sum(m["input_tokens"] for m in replies),
        "read": sum(m["cache_read_tokens"] or 0 for m in replies),
        "written": sum(m["cache_write_tokens"] or 0 for m in replies),
        "output": sum(m["output_tokens"] for m in replies),
        "saved": sum(m["cache_saved"] or 0 for m in replies),
        "last_prompt": replies[-1]["input_tokens"] + (replies[-1]["cache_read_tokens"] or 0)
                       + (replies[-1]["cache_write_tokens"] or 0),
    }


def main(argv: list[str]) -> int:
    model = argv[argv.index("--model") + 1] if "--model" in argv else "claude-sonnet-4-5"
    turn_count = int(argv[argv.index("--turns") + 1]) if "--turns" in argv else 20
    with tempfile.TemporaryDirectory() as tmp, FakeProvider() as server:
        store = open_store(Path(tmp) / "chat.db")
        cached = conversation(server, store, model, turn_count, cache=True)
        plain = conversation(server, store, model, turn_count, cache=False)
        store.close()
    print(f"{turn_count}-turn conversation on anthropic:{model} (genai-prices' prices), "
          f"last prompt {cached['last_prompt']:,} tokens:")
    for name, r in (("with caching", cached), ("without caching (baseline, same run)", plain)):
        print(f"  {name}: {format_cost(r['cost'])}  ({r['input']:,} input + {r['read']:,} cache read + "
              f"{r['written']:,} cache write + {r['output']:,} output tokens)")
    print(f"  saved: {format_cost(plain['cost'] - cached['cost'])} "
          f"({(plain['cost'] - cached['cost']) / plain['cost']:.0%} of the cost; "
          f"sum of the figures lines' savings: {format_cost(cached['saved'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
