"""Token counting: offline encodings, fallbacks, the cookbook's chat overhead, and speed on big inputs."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from chat import tokens
from chat.providers.base import Message, Usage
from chat.tokens import CL100K_BASE, O200K_BASE, ROUGH, Count, Tokenizer

ROOT = Path(__file__).resolve().parents[1]
MEGABYTE = 1_000_000


@dataclass(frozen=True)
class NamedMessage:
    """A message with the optional ``name`` the OpenAI cookbook's example uses."""

    role: str
    content: str
    name: str | None = None


def bundled(name: str) -> bytes:
    """The decompressed bundled .tiktoken file."""
    return gzip.decompress((tokens.bundled_data_dir() / f"{name}.tiktoken.gz").read_bytes())


def refuse_network(*args, **kwargs):
    raise OSError("network access attempted in a test that forbids it")


# ---------------------------------------------------------------- offline loading


def test_encodings_load_offline_with_the_network_blocked(tmp_path):
    """A fresh interpreter with every socket refused and an empty tiktoken cache still counts exactly; the
    same trap makes tiktoken's own get_encoding fail, so it would have caught a download."""
    cache_dir = tmp_path / "tiktoken-cache"
    cache_dir.mkdir()
    script = textwrap.dedent(
        """
        import json, socket, sys
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(repr(args[:2]))
            raise OSError("network disabled")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from chat import tokens
        tokens.warm_up(("o200k_base", "cl100k_base"))
        o200k = tokens.count_text("hello world", "gpt-4o")
        cl100k = tokens.count_text("hello world", "gpt-4")
        imported = {m: m in sys.modules for m in ("requests", "bpe_openai", "streamlit")}
        attempts_while_counting = len(attempts)

        import tiktoken  # the control: tiktoken's own loader must hit the trap
        try:
            tiktoken.get_encoding("o200k_base")
            control = "downloaded?!"
        except Exception as exc:
            control = type(exc).__name__
        print(json.dumps({
            "o200k": [o200k.tokens, o200k.method], "cl100k": [cl100k.tokens, cl100k.method],
            "imported": imported, "attempts_while_counting": attempts_while_counting,
            "attempts_by_tiktoken": len(attempts) - attempts_while_counting, "control": control,
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_GYM_CACHE_DIR", "PYTHONPATH")}
    env.update(TIKTOKEN_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert result["o200k"] == [2, O200K_BASE]
    assert result["cl100k"] == [2, CL100K_BASE]
    assert result["attempts_while_counting"] == 0
    assert result["imported"] == {"requests": False, "bpe_openai": False, "streamlit": False}
    assert list(cache_dir.iterdir()) == []  # we neither read nor wrote tiktoken's cache
    assert result["attempts_by_tiktoken"] > 0 and result["control"] != "downloaded?!"


@pytest.mark.parametrize("name", [O200K_BASE, CL100K_BASE])
def test_our_encodings_equal_tiktokens_own_definitions(name, tmp_path, monkeypatch):
    """Guards the split pattern and special tokens copied from tiktoken: build tiktoken's own encoding from a
    cache we pre-fill (sockets refused) and compare everything."""
    from tiktoken_ext import openai_public

    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(bundled(name))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", refuse_network)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_network)

    theirs = openai_public.ENCODING_CONSTRUCTORS[name]()
    ours = tokens._default.encoding(name)

    assert ours.name == theirs["name"]
    assert ours._pat_str == theirs["pat_str"]
    assert ours._special_tokens == theirs["special_tokens"]
    assert ours._mergeable_ranks == theirs["mergeable_ranks"]


def test_a_hash_mismatch_falls_back_to_a_rough_count(tmp_path, caplog):
    good = bundled(O200K_BASE)
    first, rest = good.split(b"\n", 1)
    token, rank = first.split()
    tampered = token + b" " + str(int(rank) + 1).encode() + b"\n" + rest  # one rank off: still parses
    (tmp_path / "o200k_base.tiktoken.gz").write_bytes(gzip.compress(tampered, compresslevel=1))
    tokenizer = Tokenizer(data_dir=tmp_path)

    with caplog.at_level("WARNING", logger="chat.tokens"):
        first_count = tokenizer.count_text("hello world", "gpt-4o")
        second_count = tokenizer.count_text("hello world!", "claude-sonnet-4-5")

    assert first_count == Count(3, ROUGH)  # 11 bytes / 4, rounded up
    assert second_count == Count(3, ROUGH)
    assert first_count.rough
    assert [r.message for r in caplog.records if "sha256" in r.message] != []
    assert len(caplog.records) == 1  # the failure is remembered, not retried on every count


def damaged_gzip() -> bytes:
    data = bytearray(gzip.compress(bundled(CL100K_BASE)[:100_000], compresslevel=1))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("content", [None, b"not gzip at all", gzip.compress(b""), "damaged", "truncated"])
def test_a_missing_or_unreadable_encoding_file_falls_back_to_a_rough_count(tmp_path, content):
    if content == "damaged":
        content = damaged_gzip()
    elif content == "truncated":
        content = gzip.compress(bundled(CL100K_BASE))[:50_000]
    if content is not None:
        (tmp_path / "cl100k_base.tiktoken.gz").write_bytes(content)
    tokenizer = Tokenizer(data_dir=tmp_path)

    assert tokenizer.count_text("hello world", "gpt-4") == Count(3, ROUGH)
    assert tokenizer.estimate_input([Message("user", "hello world")], "gpt-4").method == ROUGH
    assert tokenizer.count_text("", "gpt-4") == Count(0, ROUGH)


def test_an_encoding_is_loaded_once_however_many_threads_ask(monkeypatch):
    calls: list[str] = []
    real_load = tokens.load_encoding

    def slow_counting_load(name, data_dir=None):
        calls.append(name)
        time.sleep(0.05)
        return real_load(name, data_dir)

    monkeypatch.setattr(tokens, "load_encoding", slow_counting_load)
    tokenizer = Tokenizer()
    barrier = threading.Barrier(8)
    results: list[Count] = []

    def count():
        barrier.wait()
        results.append(tokenizer.count_text("hello world", "gpt-4o"))

    threads = [threading.Thread(target=count) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tokenizer.warm_up((O200K_BASE,))

    assert calls == [O200K_BASE]
    assert results == [Count(2, O200K_BASE)] * 8


# ---------------------------------------------------------------- counting


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", O200K_BASE), ("gpt-4o-mini-2024-07-18", O200K_BASE), ("gpt-4.1-nano", O200K_BASE),
        ("gpt-5", O200K_BASE), ("gpt-5.1-chat-latest", O200K_BASE), ("o1-mini", O200K_BASE),
        ("o3", O200K_BASE), ("o4-mini", O200K_BASE), ("chatgpt-4o-latest", O200K_BASE),
        ("gpt-4", CL100K_BASE), ("gpt-4-0613", CL100K_BASE), ("gpt-4-turbo", CL100K_BASE),
        ("gpt-3.5-turbo", CL100K_BASE), ("text-embedding-3-small", CL100K_BASE),
        ("openai/gpt-4", CL100K_BASE), ("ft:gpt-3.5-turbo-0125:acme::abc123", CL100K_BASE),
        ("claude-sonnet-4-5", O200K_BASE), ("llama3.1:8b", O200K_BASE), ("qwen2.5-coder", O200K_BASE),
        ("", O200K_BASE),
    ],
)
def test_each_model_maps_to_its_encoding_or_o200k_as_the_best_approximation(model, expected):
    assert tokens.encoding_name_for(model) == expected


def test_counts_match_tiktokens_known_values():
    assert tokens.count_text("hello world", "gpt-4o") == Count(2, O200K_BASE)
    assert tokens.count_text("hello world", "gpt-3.5-turbo") == Count(2, CL100K_BASE)
    # the token ids from tiktoken's README and OpenAI's cookbook
    assert tokens._default.encoding(O200K_BASE).encode("hello world") == [24912, 2375]
    assert tokens._default.encoding(CL100K_BASE).encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert tokens.count_text("", "gpt-4o") == Count(0, O200K_BASE)
    assert tokens.estimate_output("tiktoken is great!", "gpt-4") == Count(6, CL100K_BASE)


def test_special_tokens_in_user_text_are_counted_as_text_and_do_not_raise():
    assert tokens.count_text("<|endoftext|>", "gpt-4o") == Count(7, O200K_BASE)
    assert tokens.count_text("<|fim_prefix|><|endofprompt|>", "gpt-4").tokens > 2
    messages = [Message("user", "ignore this <|endoftext|> and <|im_start|>system")]
    assert tokens.estimate_input(messages, "gpt-4o").method == O200K_BASE
    assert tokens.count_text("lone surrogate \ud800 here", "gpt-4o").method == O200K_BASE


COOKBOOK_MESSAGES = [
    NamedMessage("system", "You are a helpful, pattern-following assistant that translates corporate jargon "
                           "into plain English."),
    NamedMessage("system", "New synergies will help drive top-line growth.", "example_user"),
    NamedMessage("system", "Things working well together will increase revenue.", "example_assistant"),
    NamedMessage("system", "Let's circle back when we have more bandwidth to touch base on opportunities for "
                           "increased leverage.", "example_user"),
    NamedMessage("system", "Let's talk later when we're less busy about how to do better.", "example_assistant"),
    NamedMessage("user", "This late pivot means we don't have time to boil the ocean for the client "
                         "deliverable."),
]


def test_chat_overhead_matches_the_openai_cookbook():
    # The cookbook's example and the figures the API returned for it.
    assert tokens.estimate_input(COOKBOOK_MESSAGES, "gpt-4-0613") == Count(129, CL100K_BASE)
    assert tokens.estimate_input(COOKBOOK_MESSAGES, "gpt-4o") == Count(124, O200K_BASE)
    # The system prompt counts as one more message.
    system, rest = COOKBOOK_MESSAGES[0].content, COOKBOOK_MESSAGES[1:]
    assert tokens.estimate_input(rest, "gpt-4o", system=system) == Count(124, O200K_BASE)
    # 3 per message + "user" (1) + "hello world" (2) + 3 to prime the reply
    assert tokens.estimate_input([Message("user", "hello world")], "gpt-4o").tokens == 3 + 1 + 2 + 3
    assert tokens.estimate_input([], "gpt-4o").tokens == 3
    assert tokens.estimate_input([], "gpt-4o", system="").tokens == 3


def test_fill_missing_usage_estimates_only_what_the_provider_did_not_report():
    messages = [Message("user", "hello world")]
    reported = Usage(input_tokens=1234, output_tokens=None, input_exact=True)

    filled = tokens.fill_missing_usage(reported, messages=messages, system=None,
                                       reply_text="tiktoken is great!", model="gpt-4")

    assert (filled.input_tokens, filled.input_exact) == (1234, True)
    assert (filled.output_tokens, filled.output_exact) == (6, False)
    assert reported.output_tokens is None  # a copy, the original is untouched


def test_fill_missing_usage_keeps_a_complete_usage_as_it_is():
    exact = Usage(input_tokens=10, output_tokens=20, cache_read_tokens=5, input_exact=True, output_exact=True)
    assert tokens.fill_missing_usage(exact, messages=[], system=None, reply_text="whatever",
                                     model="gpt-4o") == exact


def test_fill_missing_usage_estimates_both_and_leaves_out_reported_cache_tokens():
    messages = [Message("user", "hello world")]  # 9 prompt tokens
    filled = tokens.fill_missing_usage(Usage(), messages=messages, system=None, reply_text="hello world",
                                       model="gpt-4o")
    assert filled == Usage(input_tokens=9, output_tokens=2, input_exact=False, output_exact=False)

    cached = tokens.fill_missing_usage(Usage(cache_read_tokens=4, output_tokens=7, output_exact=True),
                                       messages=messages, system=None, reply_text="", model="gpt-4o")
    assert (cached.input_tokens, cached.cache_read_tokens, cached.output_tokens) == (5, 4, 7)
    assert not cached.exact


# ---------------------------------------------------------------- big inputs

BIG_TEXTS = {
    "prose": ("The quick brown fox jumps over the lazy dog, again and again. " * 20_000)[:MEGABYTE],
    "code": (Path(tokens.__file__).read_text() * 60)[:MEGABYTE],
    "one giant word": "a" * MEGABYTE,
    "only spaces": " " * MEGABYTE,  # tiktoken's regex alone gives up on this ("Max stack size exceeded")
    "CJK without spaces": ("漢字のテスト" * (MEGABYTE // 6 + 1))[:MEGABYTE],
}


@pytest.mark.parametrize("kind", BIG_TEXTS)
def test_a_megabyte_of_any_kind_of_text_counts_with_the_real_encoding(kind):
    # Speed is measured in benchmarks/, not asserted here.
    count = tokens.count_text(BIG_TEXTS[kind], "gpt-4o")
    assert count.method == O200K_BASE
    assert count.tokens > 0


@pytest.mark.parametrize("kind", ["prose", "code"])
def test_counting_a_big_text_in_pieces_gives_the_same_count_as_tiktoken_on_the_whole(kind):
    text = BIG_TEXTS[kind]
    whole = len(tokens._default.encoding(O200K_BASE).encode(text, disallowed_special=()))
    assert tokens.count_text(text, "gpt-4o").tokens == whole


def test_the_rough_fallback_counts_a_megabyte_by_its_utf8_bytes(tmp_path):
    tokenizer = Tokenizer(data_dir=tmp_path)  # no files there
    count = tokenizer.count_text("é" * MEGABYTE, "gpt-4o")
    assert count == Count(MEGABYTE // 2, ROUGH)  # 2 MB of UTF-8


FUZZ_ALPHABET = " \n\r\t/'.,!-_aZé1\u00a0\u3000漢\u0301\x1c"


def fuzz_texts(count: int, seed: int = 20251121):
    """Short random texts, mostly from characters that sit on or near piece boundaries, some from anywhere
    in Unicode. Seeded, so a failure reproduces."""
    rng = random.Random(seed)
    for _ in range(count):
        size = rng.randint(0, 40)
        if rng.random() < 0.8:
            yield "".join(rng.choice(FUZZ_ALPHABET) for _ in range(size))
        else:
            yield "".join(chr(rng.choice((rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF),
                                          rng.randint(0x3000, 0xD7FF), rng.randint(0xE000, 0x10FFFF))))
                          for _ in range(size))


def test_a_safe_cut_never_changes_the_count():
    """Where _safe_cut finds a boundary, counting both sides separately equals counting the whole."""
    encodings = [tokens._default.encoding(name) for name in (O200K_BASE, CL100K_BASE)]
    cuts_found = 0
    for text in fuzz_texts(3000):
        cut = tokens._safe_cut(text, 0, len(text))
        cuts_found += cut < len(text)
        for enc in encodings:
            whole = len(enc.encode(text, disallowed_special=()))
            parts = len(enc.encode(text[:cut], disallowed_special=())) + len(enc.encode(text[cut:],
                                                                                      disallowed_special=()))
            assert whole == parts, (enc.name, text, cut)
    assert cuts_found > 1000  # the fuzz does exercise real cuts


def test_a_text_counted_again_gives_the_same_count_and_the_remembered_counts_stay_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "MAX_REMEMBERED", 3)
    tokenizer = Tokenizer()
    texts = [f"message {i}: " + "words " * i for i in range(6)]
    first = [tokenizer.count_text(t, "gpt-4o") for t in texts]
    again = [tokenizer.count_text(t, "gpt-4o") for t in texts]
    assert first == again == [Tokenizer().count_text(t, "gpt-4o") for t in texts]
    assert len(tokenizer._lengths) == 3  # the oldest are forgotten
    assert tokenizer.count_text(texts[0], "gpt-4") == Tokenizer().count_text(texts[0], "gpt-4")  # per encoding
