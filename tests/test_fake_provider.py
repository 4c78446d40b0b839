"""The fake provider server itself: its wire formats parse with the real SDKs, its knobs do what they
say, it notices disconnects at once, and it can be driven over HTTP as a subprocess."""

import json
import select
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import pytest

from fake_provider import FakeProvider, default_text

HELLO = [{"role": "user", "content": "hello there"}]


def post_json(url, body, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def raw_sse(server, path, body, headers):
    """The SSE lines of a streamed response, read with plain httpx2 (no SDK)."""
    with httpx2.Client(timeout=5) as client, client.stream("POST", server.url + path, json=body,
                                                            headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines() if line]


def test_the_openai_stream_parses_with_the_sdk_and_ends_with_a_usage_chunk(fake_provider, openai_client):
    fake_provider.set_scenario(None, words=8, cache_read_tokens=3)
    stream = openai_client.chat.completions.create(model="gpt-test", messages=HELLO, stream=True,
                                                   stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (5, 8, 13)
    assert last.usage.prompt_tokens_details.cached_tokens == 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello there lorem ipsum dolor sit amet"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert fake_provider.wait_for("complete")["chunks"] == 8


def test_every_openai_chunk_says_usage_null_only_when_usage_was_asked_for(fake_provider):
    headers = {"Authorization": "Bearer test-key"}
    body = {"model": "m", "messages": HELLO, "stream": True}
    with_usage = raw_sse(fake_provider, "/v1/chat/completions",
                         {**body, "stream_options": {"include_usage": True}}, headers)
    without = raw_sse(fake_provider, "/v1/chat/completions", body, headers)
    assert with_usage[-1] == without[-1] == "data: [DONE]"
    payloads = [json.loads(line.removeprefix("data: ")) for line in with_usage[:-1]]
    assert all("usage" in p and p["usage"] is None for p in payloads[:-1])
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["completion_tokens"] == 20
    assert not any('"usage"' in line for line in without)


def test_the_anthropic_stream_sends_its_events_in_the_documented_order(fake_provider):
    fake_provider.set_scenario(None, words=3, input_tokens=11, cache_read_tokens=5, cache_write_tokens=2)
    lines = raw_sse(fake_provider, "/v1/messages", {"model": "claude-test", "max_tokens": 100, "stream": True,
                                                    "messages": HELLO}, {"x-api-key": "test-key"})
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "ping", "content_block_delta",
                      "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
                      "message_stop"]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert data[0]["message"]["usage"] == {"input_tokens": 11, "cache_creation_input_tokens": 2,
                                           "cache_read_input_tokens": 5, "output_tokens": 1}
    assert data[-2] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": 3}}


def test_the_anthropic_stream_parses_with_the_sdk(fake_provider, anthropic_client):
    fake_provider.set_scenario(None, text="Hi there, friend.", ping_every=1)
    events = list(anthropic_client.messages.create(model="claude-test", max_tokens=64, messages=HELLO,
                                                   stream=True))
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Hi there, friend."
    assert events[-2].type == "message_delta" and events[-2].usage.output_tokens == 3
    assert len(fake_provider.events("ping")) == 2  # every chunk after the first


def test_the_default_reply_echoes_the_last_user_message_then_filler_words():
    body = {"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                         {"role": "user", "content": [{"type": "text", "text": "second one"}]}]}
    assert default_text(body, 6) == "Echo: second one lorem ipsum dolor"
    assert default_text(body, 2) == "Echo: second one"


def test_a_split_multibyte_character_arrives_intact_through_both_sdks(fake_provider, openai_client,
                                                                      anthropic_client):
    text = "Grüße aus 東京 🌍 ok"
    fake_provider.set_scenario(None, text=text, split_utf8=True, split_delay=0.01)
    stream = openai_client.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text
    events = anthropic_client.messages.create(model="m", max_tokens=64, messages=HELLO, stream=True)
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == text


def test_a_split_multibyte_character_really_leaves_in_two_network_writes(fake_provider):
    fake_provider.set_scenario(None, text="🌍", split_utf8=True, split_delay=0.05)
    pieces = []
    with httpx2.Client(timeout=5) as client, client.stream(
            "POST", fake_provider.url + "/v1/chat/completions", json={"model": "m", "messages": HELLO,
                                                                       "stream": True},
            headers={"Authorization": "Bearer test-key"}) as response:
        pieces = list(response.iter_raw())
    halves = [p for p in pieces if "🌍".encode()[:1] in p or "🌍".encode()[-1:] in p]
    assert any(p.endswith(b"\xf0") for p in halves)  # the first half ends after the lead byte
    joined = b"".join(pieces)
    assert "🌍".encode() in joined


def test_the_server_logs_a_disconnect_within_50_ms_of_the_client_closing(fake_provider):
    fake_provider.set_scenario(None, tokens_per_second=10, words=50)
    body = json.dumps({"model": "m", "max_tokens": 100, "stream": True, "messages": HELLO}).encode()
    sock = socket.create_connection(("127.0.0.1", fake_provider.port))
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: test\r\nx-api-key: test-key\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    received = b""
    while received.count(b"content_block_delta") < 4:  # 2 text chunks (event line + type field each)
        assert select.select([sock], [], [], 2)[0], "no data from the server"
        received += sock.recv(65536)
    closed_at = time.monotonic()
    sock.close()
    event = fake_provider.wait_for("disconnect", timeout=1)
    assert event["t"] - closed_at < 0.05
    assert event["chunks"] == 2 and event["planned"] == 50 and event["during"] == "text"
    assert not fake_provider.events("complete")


def test_the_request_log_keeps_the_body_and_which_auth_header_but_not_its_value(fake_provider, openai_client,
                                                                              anthropic_client):
    list(openai_client.chat.completions.create(model="gpt-x", messages=HELLO, stream=True))
    list(anthropic_client.messages.create(model="claude-x", max_tokens=9, messages=HELLO, system="Be brief.",
                                          stream=True))
    first, second = fake_provider.requests
    assert (first["model"], first["protocol"], first["auth_header"], first["auth_ok"]) == (
        "gpt-x", "openai", "authorization", True)
    assert first["headers"]["authorization"] == "<redacted>"
    assert first["body"]["messages"] == HELLO
    assert (second["protocol"], second["body"]["system"]) == ("anthropic", "Be brief.")
    # anthropic 2.10 sends api_key as "Authorization: Bearer", not x-api-key; the server takes either
    assert second["auth_header"] in ("authorization", "x-api-key") and second["auth_ok"]
    assert "test-key" not in json.dumps(fake_provider.log)


def test_a_wrong_key_gets_a_401_in_each_providers_format(fake_provider):
    status, body = post_json(fake_provider.url + "/v1/chat/completions",
                             {"model": "m", "messages": HELLO, "stream": True},
                             {"Authorization": "Bearer wrong"})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body = post_json(fake_provider.url + "/v1/messages", {"model": "m", "messages": HELLO},
                             {"x-api-key": "wrong"})
    assert status == 401
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert [e["auth_ok"] for e in fake_provider.requests] == [False, False]


def test_a_server_without_a_key_accepts_any_key_or_none():
    with FakeProvider(api_key=None) as server:
        status, _ = post_json(server.url + "/v1/messages", {"model": "m", "messages": HELLO})
        assert status == 200


def test_fail_times_fails_only_the_first_requests_of_a_scenario(fake_provider):
    fake_provider.set_scenario("flaky", status=503, fail_times=1)
    fake_provider.set_scenario(None, status=500)
    url = fake_provider.url + "/v1/chat/completions"
    auth = {"Authorization": "Bearer test-key"}
    statuses = [post_json(url, {"model": "flaky", "messages": HELLO}, auth)[0] for _ in range(3)]
    assert statuses == [503, 200, 200]
    assert post_json(url, {"model": "other", "messages": HELLO}, auth)[0] == 500


def test_max_tokens_cuts_the_reply_with_the_providers_length_reason(fake_provider, openai_client,
                                                                    anthropic_client):
    chunks = list(openai_client.chat.completions.create(model="m", messages=HELLO, stream=True,
                                                        max_completion_tokens=3))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) == 3
    events = list(anthropic_client.messages.create(model="m", max_tokens=2, messages=HELLO, stream=True))
    assert events[-2].delta.stop_reason == "max_tokens"


def test_a_stalled_stream_stays_open_until_the_client_gives_up(fake_provider, make_openai_client):
    fake_provider.set_scenario(None, stall_after=2)
    client = make_openai_client(timeout=0.3)
    stream = client.chat.completions.create(model="m", messages=HELLO, stream=True)
    got = []
    with pytest.raises(Exception) as caught:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert "timed out" in str(caught.value).lower()
    assert got == ["Echo:", " hello"]
    assert fake_provider.events("stall")[0]["chunks"] == 2
    assert fake_provider.wait_for("disconnect", timeout=1)["chunks"] == 2


def test_a_stall_with_a_duration_resumes_the_stream(fake_provider, openai_client):
    fake_provider.set_scenario(None, words=4, stall_after=1, stall_for=0.1)
    started = time.monotonic()
    chunks = list(openai_client.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert time.monotonic() - started >= 0.1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello there lorem"


def test_openai_ping_comments_are_ignored_by_the_sdk(fake_provider, openai_client):
    fake_provider.set_scenario(None, words=5, ping_every=2)
    chunks = list(openai_client.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Echo: hello")
    assert len(fake_provider.events("ping")) == 2


def test_scenarios_are_per_model_over_a_default_and_reject_unknown_knobs(fake_provider):
    fake_provider.set_scenario(None, words=5, tokens_per_second=50)
    fake_provider.set_scenario("fast", tokens_per_second=None)
    assert fake_provider.scenario_for("fast")["words"] == 5
    assert fake_provider.scenario_for("fast")["tokens_per_second"] is None
    assert fake_provider.scenario_for("other")["tokens_per_second"] == 50
    with pytest.raises(ValueError, match="tokens_per_sec"):
        fake_provider.set_scenario(None, tokens_per_sec=3)
    fake_provider.reset()
    assert fake_provider.scenario_for("other")["words"] == 20


def test_the_control_endpoints_drive_the_server_over_http(fake_provider):
    url = fake_provider.url
    assert post_json(url + "/_control/scenario", {"model": "m", "text": "over http"})[0] == 200
    assert post_json(url + "/_control/scenario", {"bogus": 1})[0] == 400
    status, body = post_json(url + "/v1/chat/completions", {"model": "m", "messages": HELLO},
                             {"Authorization": "Bearer test-key"})
    assert body["choices"][0]["message"]["content"] == "over http"
    with urllib.request.urlopen(url + "/_control/log?kind=request", timeout=5) as response:
        events = json.loads(response.read())["events"]
    assert [e["model"] for e in events] == ["m"]
    assert post_json(url + "/_control/reset", {})[0] == 200
    assert fake_provider.scenario_for("m")["text"] is None and fake_provider.log == []


def test_the_server_runs_as_a_subprocess_and_prints_a_ready_line():
    script = Path(__file__).with_name("fake_provider.py")
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert select.select([proc.stdout], [], [], 10)[0], "no ready line"
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        with urllib.request.urlopen(url + "/_control/health", timeout=5) as response:
            assert json.loads(response.read()) == {"ok": True}
        assert post_json(url + "/_control/scenario", {"text": "from a subprocess"})[0] == 200
        status, body = post_json(url + "/v1/messages", {"model": "m", "messages": HELLO},
                                 {"x-api-key": "test-key"})
        assert body["content"][0]["text"] == "from a subprocess"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
