"""How a reply ended, against the shapes real servers send: the real openai and anthropic SDKs over HTTP to
the fake provider, a real SQLite file, and the stored row (status, finish, text, tokens, cost) checked."""

from __future__ import annotations

import pytest

from chat import turns
from chat.config import ModelId
from chat.display import ending, figures_line
from chat.pricing import Pricer
from chat.providers.anthropic import AnthropicProvider
from chat.providers.base import GatewayError, Message, NotAReply, Params, ServerSaid, Usage
from chat.providers.openai import OpenAIProvider

PROVIDERS = ["openai", "anthropic"]


@pytest.fixture
def providers(openai_client, anthropic_client):
    return {"openai": OpenAIProvider(name="openai", client=openai_client, label="OpenAI"),
            "anthropic": AnthropicProvider(name="anthropic", client=anthropic_client, label="Anthropic")}


MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


def run_turn(store, providers, name, prompt="hello", *, conversation=None, pricer=None, provider_name=None,
             params=None):
    """One chat turn to the end; returns (the stored reply row, the conversation id)."""
    conversation = conversation or store.create_conversation(user="alice", settings={})
    settings = turns.TurnSettings(ModelId(provider_name or name, MODELS[name]), params=params or Params())
    turn = turns.send(turns.TurnContext(store, providers[name], pricer or Pricer()), conversation, prompt, settings)
    try:
        "".join(turn.stream(flush_every=0.0))
    except Exception:
        pass  # a failed turn is recorded on its row
    return store.messages(conversation)[-1], conversation


# ---------------------------------------------------------------- complete only when the provider said so


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_a_stream_that_ends_cleanly_mid_answer_is_stored_unfinished_with_its_text_and_estimated_tokens(
        store, providers, fake_provider, name, framing):
    fake_provider.set_scenario(None, words=30, end_after=6, framing=framing)
    row, _ = run_turn(store, providers, name)
    assert row["status"] == "unfinished"
    assert row["content"].startswith("Echo: hello") and len(row["content"].split()) == 6
    assert row["output_tokens"] and not row["output_exact"]  # estimated, and marked so
    assert row["cost"] is not None
    end = ending(row)
    assert end.word == "unfinished" and "ended before the provider finished it" in end.notice
    assert end.action == "retry"
    assert "unfinished" in figures_line(row) and "≈" in figures_line(row)


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_reply_the_provider_finished_is_complete(store, providers, fake_provider, name):
    fake_provider.set_scenario(None, words=5)
    row, _ = run_turn(store, providers, name)
    assert row["status"] == "complete" and row["finish_reason"] in ("stop", "end_turn")
    assert ending(row).word is None and ending(row).notice is None


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_reply_cut_at_the_output_limit_says_so_and_offers_continue(store, providers, fake_provider, name):
    fake_provider.set_scenario(None, words=30)
    row, conversation = run_turn(store, providers, name, params=Params(max_tokens=5))
    assert row["status"] == "complete" and row["finish_reason"] in ("max_output_tokens", "max_tokens")
    end = ending(row)
    assert end.word == "cut at the output limit" and end.action == "continue"
    assert "cut at the output limit" in figures_line(row)
    # Continue is a new turn asking the model to go on, with the cut reply in the request
    fake_provider.set_scenario(None, words=5)
    run_turn(store, providers, name, turns.CONTINUE_PROMPT, conversation=conversation)
    sent = fake_provider.sent_messages()
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[-1]["content"] == turns.CONTINUE_PROMPT


def test_a_reply_blocked_by_a_content_filter_says_so_and_is_left_out_of_later_requests(
        store, providers, fake_provider):
    fake_provider.set_scenario(None, words=4, finish_reason="content_filter")
    row, conversation = run_turn(store, providers, "openai", "something touchy")
    assert row["status"] == "complete" and row["finish_reason"] == "content_filter"
    assert "content filter" in ending(row).notice and ending(row).left_out
    fake_provider.set_scenario(None, words=3)
    run_turn(store, providers, "openai", "something else", conversation=conversation)
    assert fake_provider.sent_messages() == [{"role": "user", "content": "something else"}]


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_refusal_is_stored_shown_and_its_exchange_left_out_of_later_requests(store, providers, fake_provider,
                                                                            name):
    fake_provider.set_scenario(None, refusal="I can't help with that.")
    row, conversation = run_turn(store, providers, name, "first question")
    assert row["status"] == "complete" and row["finish_reason"] == "refusal"
    assert row["content"] == "I can't help with that."
    end = ending(row)
    assert end.word == "refused" and end.left_out and "left out of later messages" in end.notice
    fake_provider.set_scenario(None, words=3)
    run_turn(store, providers, name, "second question", conversation=conversation)
    assert fake_provider.sent_messages() == [{"role": "user", "content": "second question"}]


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_tool_call_with_no_text_names_the_tool_and_keeps_later_requests_valid(store, providers, fake_provider,
                                                                                name):
    fake_provider.set_scenario(None, text="", tool_call={"name": "get_weather", "arguments": {"city": "Paris"}})
    row, conversation = run_turn(store, providers, name, "weather in Paris?")
    assert row["status"] == "complete" and row["finish_reason"] in ("tool_calls", "tool_use")
    assert row["tool_calls"] == ["get_weather"] and row["content"] == ""
    assert ending(row).notice == "The model asked to use the tool get_weather; tools are not enabled here."
    fake_provider.set_scenario(None, words=3)
    run_turn(store, providers, name, "then just guess", conversation=conversation)
    roles = [m["role"] for m in fake_provider.sent_messages()]
    assert roles == ["user"]  # the two messages go as one: never two user messages in a row
    assert fake_provider.sent_messages()[0]["content"] == "weather in Paris?\n\nthen just guess"


def test_a_paused_anthropic_turn_says_so_and_offers_continue(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=4, finish_reason="pause_turn")
    row, _ = run_turn(store, providers, "anthropic")
    assert row["status"] == "complete" and row["finish_reason"] == "pause_turn"
    assert ending(row).word == "paused" and ending(row).action == "continue"


# ---------------------------------------------------------------- answers that are not streams


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_whole_json_answer_to_a_streaming_request_is_the_reply_with_its_usage(store, providers, fake_provider,
                                                                               name):
    fake_provider.set_scenario(None, body="json", text="Four, as a whole answer.", input_tokens=12,
                               output_tokens=5)
    row, _ = run_turn(store, providers, name)
    assert row["status"] == "complete" and row["content"] == "Four, as a whole answer."
    assert (row["input_tokens"], row["output_tokens"]) == (12, 5) and row["input_exact"] and row["output_exact"]


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_json_error_answered_with_200_is_an_error_in_the_servers_own_words(store, providers, fake_provider,
                                                                            name):
    fake_provider.set_scenario(None, body="json_error", error_message="model 'llama9' not found")
    row, _ = run_turn(store, providers, name)
    assert row["status"] == "error" and row["content"] == ""
    assert "model 'llama9' not found" in row["error"]
    assert row["cost"] == 0.0  # refused before generating anything


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(("body", "words"), [("html", "web page"), ("text", "not a model reply")])
def test_a_page_or_plain_text_answered_with_200_is_an_error_never_an_empty_reply(store, providers, fake_provider,
                                                                                name, body, words):
    fake_provider.set_scenario(None, body=body)
    row, _ = run_turn(store, providers, name)
    assert row["status"] == "error" and words in row["error"]
    if body == "html":
        assert "sign-in proxy" in row["error"] and "<form" not in row["error"]


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_reply_object_raises_typed_errors_for_answers_that_are_not_streams(providers, fake_provider, name):
    fake_provider.set_scenario(None, body="json_error")
    with pytest.raises(ServerSaid):
        list(providers[name].stream(MODELS[name], [Message("user", "hi")]))
    fake_provider.set_scenario(None, body="html")
    with pytest.raises(NotAReply) as caught:
        list(providers[name].stream(MODELS[name], [Message("user", "hi")]))
    assert caught.value.web_page


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("status", [502, 504, 524])
def test_a_gateway_error_page_is_retried_and_counted_while_the_sdk_waits(
        make_openai_client, make_anthropic_client, fake_provider, name, status):
    from chat.providers import transport

    sdk = __import__(name)
    client_kwargs = {"max_retries": 2, "http_client": transport.http_client(sdk, timeout=5.0, max_retry_wait=5)}
    client = (make_openai_client if name == "openai" else make_anthropic_client)(**client_kwargs)
    provider = (OpenAIProvider if name == "openai" else AnthropicProvider)(name=name, client=client)
    fake_provider.set_scenario(None, status=status, error_html=True, fail_times=1, retry_after=0, words=3)
    reply = provider.stream(MODELS[name], [Message("user", "hi")])
    assert "".join(reply).startswith("Echo: hi")
    assert reply.failed_attempts == 1 and reply.attempts == 2  # what the page's "retrying…" reads
    fake_provider.set_scenario(None, status=status, error_html=True, retry_after=0)
    with pytest.raises(GatewayError) as caught:
        list(provider.stream(MODELS[name], [Message("user", "hi")]))
    assert f"answered HTTP {status}" in caught.value.hint and "<html" not in caught.value.detail


# ---------------------------------------------------------------- chunks from imperfect servers


@pytest.mark.parametrize("mode", ["missing", "counting"])
def test_a_choice_without_an_index_or_counting_up_arrives_whole(store, providers, fake_provider, mode):
    fake_provider.set_scenario(None, words=12, choice_index=mode)
    row, _ = run_turn(store, providers, "openai")
    assert row["status"] == "complete" and row["finish_reason"] == "stop"
    assert row["content"] == "Echo: hello lorem ipsum dolor sit amet consectetur adipiscing elit sed do"


def test_only_a_real_second_choice_is_ignored(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=8, choice_index="second")
    row, _ = run_turn(store, providers, "openai")
    assert row["status"] == "complete"
    assert "SECOND" not in row["content"] and row["content"].startswith("Echo: hello lorem")


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_character_split_into_surrogate_halves_across_chunks_is_joined(store, providers, fake_provider, name):
    fake_provider.set_scenario(None, text="Smile 😀 and 🎉 done", split_surrogates=True)
    row, _ = run_turn(store, providers, name)
    assert row["status"] == "complete" and row["content"] == "Smile 😀 and 🎉 done"


@pytest.mark.parametrize("name", PROVIDERS)
def test_an_unpaired_surrogate_is_replaced_and_the_reply_still_finishes_with_its_cost(store, providers,
                                                                                     fake_provider, name):
    fake_provider.set_scenario(None, text="broken \ud83d here and \ude00 there")
    row, _ = run_turn(store, providers, name)
    assert row["status"] == "complete" and row["cost"] is not None
    assert row["content"] == "broken \ufffd here and \ufffd there"


def test_several_anthropic_text_blocks_are_separated_as_paragraphs(store, providers, fake_provider):
    fake_provider.set_scenario(None, text_blocks=["I can help with that.", "It is done."])
    row, _ = run_turn(store, providers, "anthropic")
    assert row["content"] == "I can help with that.\n\nIt is done."


# ---------------------------------------------------------------- accounting that follows the bill


def test_a_cost_the_server_reports_is_used_when_no_price_is_known_and_marked_as_its_figure(
        store, openai_client, fake_provider):
    providers = {"openai": OpenAIProvider(name="router", client=openai_client, label="OpenRouter")}
    fake_provider.set_scenario(None, words=5, usage_cost=0.00123)
    row, _ = run_turn(store, providers, "openai", provider_name="router")  # no price for router:gpt-4o-mini
    assert row["cost"] == pytest.approx(0.00123) and row["cost_source"] == "provider"
    assert "$0.0012 (provider's figure)" in figures_line(row)


def test_our_price_wins_over_the_servers_figure_when_one_is_configured(store, openai_client, fake_provider):
    providers = {"openai": OpenAIProvider(name="router", client=openai_client, label="OpenRouter")}
    fake_provider.set_scenario(None, words=5, usage_cost=0.5, input_tokens=1_000_000, output_tokens=0)
    pricer = Pricer({"router:*": {"input_mtok": 1.0, "output_mtok": 2.0}})
    row, _ = run_turn(store, providers, "openai", provider_name="router", pricer=pricer)
    assert row["cost"] == pytest.approx(1.0) and row["cost_source"] is None


def test_one_hour_cache_writes_are_priced_at_the_one_hour_rate(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=3, input_tokens=0, output_tokens=0, cache_write_tokens=1_000_000,
                               cache_write_1h_tokens=1_000_000)
    row, _ = run_turn(store, providers, "anthropic")
    five_minutes = Pricer().cost("anthropic", "claude-haiku-4-5", Usage(0, 0, cache_write_tokens=1_000_000)).usd
    one_hour = Pricer().cost("anthropic", "claude-haiku-4-5",
                             Usage(0, 0, cache_write_tokens=1_000_000, cache_write_1h_tokens=1_000_000)).usd
    assert one_hour > five_minutes
    assert row["cost"] == pytest.approx(one_hour)


def test_a_price_override_charges_one_hour_cache_writes_at_twice_the_input_rate_unless_given():
    usage = Usage(0, 0, cache_write_tokens=1_000_000, cache_write_1h_tokens=400_000)
    default = Pricer({"anthropic:*": {"input_mtok": 1.0, "output_mtok": 5.0, "cache_write_mtok": 1.25}})
    assert default.cost("anthropic", "m", usage).usd == pytest.approx(0.6 * 1.25 + 0.4 * 2.0)
    given = Pricer({"anthropic:*": {"input_mtok": 1.0, "output_mtok": 5.0, "cache_write_1h_mtok": 3.0}})
    assert given.cost("anthropic", "m", usage).usd == pytest.approx(0.6 * 1.0 + 0.4 * 3.0)


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_finished_reply_with_no_text_at_all_says_so_instead_of_an_empty_bubble(store, providers, fake_provider,
                                                                                 name):
    fake_provider.set_scenario(None, text="")
    row, _ = run_turn(store, providers, name)
    assert row["status"] == "complete" and row["content"] == ""
    assert ending(row).word == "empty" and "without saying anything" in ending(row).notice
