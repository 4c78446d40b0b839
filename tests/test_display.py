from datetime import date

from chat.display import figures_line, sent_at, stopped_or_failed, stored_time, total_cost_text, totals_line
from chat.history.export import conversation_markdown


def row(**kw):
    base = {"model": "gpt-4o-mini", "input_tokens": 1234, "output_tokens": 256, "input_exact": True,
            "output_exact": True, "cost": 0.0025, "ttft": 0.41, "duration": 4.54, "status": "complete"}
    return {**base, **kw}


def test_the_figures_line_reads_model_tokens_cost_first_token_and_speed():
    assert figures_line(row()) == "gpt-4o-mini · 1,234 in · 256 out · $0.0025 · 0.41 s to first token · 62 tok/s"


def test_estimated_figures_are_marked_and_a_stop_is_named():
    line = figures_line(row(output_exact=False, status="stopped"))
    assert "≈256 out" in line and "≈$0.0025" in line and line.endswith("stopped by you")


def test_an_unknown_price_says_so_instead_of_zero():
    assert "cost unknown" in figures_line(row(cost=None))


def test_a_request_refused_before_streaming_shows_a_plain_zero_cost_and_failed():
    line = figures_line(row(input_tokens=None, output_tokens=None, input_exact=False, output_exact=False,
                            cost=0.0, ttft=None, duration=0.2, status="error"))
    assert line == "gpt-4o-mini · $0.00 · failed"


def test_the_conversation_total_names_replies_of_unknown_cost():
    assert totals_line({"input_tokens": 1000, "output_tokens": 200, "cost": 0.01, "unknown_cost_count": 1}) == (
        "1,200 tokens · $0.01 + 1 reply of unknown cost")
    assert totals_line({"input_tokens": 10, "output_tokens": 2, "cost": None, "unknown_cost_count": 2}) == (
        "12 tokens · cost unknown")


def test_a_total_cost_never_shows_an_unknown_as_zero():
    assert total_cost_text(0.0, 2) == "cost unknown"
    assert total_cost_text(None, 1) == "cost unknown"
    assert total_cost_text(0.5, 1) == "$0.50 + 1 reply of unknown cost"
    assert total_cost_text(0.5, 3, estimated=True) == "≈$0.50 + 3 replies of unknown cost"
    assert total_cost_text(0.0, 0) == "$0.00"


def test_markdown_images_in_model_output_are_shown_as_text_not_fetched():
    from chat.safe_text import inert_markdown

    shown = inert_markdown("See ![pixel](https://tracker.example/p.png?d=secret) and [a link](https://x.example)")
    assert "![" not in shown
    assert "[a link](https://x.example)" in shown


def test_an_image_split_across_stream_chunks_is_made_inert_too():
    from chat.safe_text import InertStream

    guard = InertStream()
    out = "".join(guard.feed(c) for c in ["look !", "[x](https://t.example/a.png) ok!", "!"]) + guard.flush()
    assert "![" not in out
    assert out.replace("\u200b", "") == "look ![x](https://t.example/a.png) ok!!"


def test_the_figures_line_shows_cached_tokens_and_what_caching_saved_or_cost():
    line = figures_line(row(input_tokens=34, cache_read_tokens=1200, cache_saved=0.00081))
    assert line.startswith("gpt-4o-mini · 34 in · 1,200 from cache · 256 out · $0.0025 · caching saved $0.00081 ·")
    written = figures_line(row(cache_write_tokens=900, cache_saved=-0.0002))
    assert "900 to cache" in written and "caching cost $0.00020 more" in written


def test_the_figures_line_ends_with_the_time_it_is_given():
    assert figures_line(row(), when="14:03").endswith(" · 62 tok/s · 14:03")


def test_a_time_is_shown_in_the_viewers_zone_shorter_for_today():
    stamp = "2026-11-29T21:05:09.000001Z"
    assert sent_at(stamp, "Europe/Berlin", today=date(2026, 11, 29)) == "22:05"
    assert sent_at(stamp, None, today=date(2026, 11, 29)) == "21:05 UTC"
    assert sent_at(stamp, "Not/AZone", today=date(2026, 11, 30)) == "29 Nov 21:05 UTC"
    assert sent_at(stamp, "Asia/Tokyo", today=date(2027, 1, 2)) == "2026-11-30 06:05"
    assert sent_at(None) == "" and sent_at("garbage") == ""


def test_a_stored_time_is_shown_to_the_minute_and_marked_utc_on_pages_and_in_exports_alike():
    assert stored_time("2025-11-29T14:03:07.123456Z") == "2025-11-29 14:03 UTC"
    assert stored_time(None) == ""
    conversation = {"id": "c1", "title": None, "created_at": "2025-11-29T14:03:07.123456Z",
                    "updated_at": "2025-11-30T08:15:00.000000Z"}
    markdown = conversation_markdown(conversation, [])
    assert markdown.startswith("# Untitled\n")
    assert "- Started: 2025-11-29 14:03 UTC" in markdown and "- Last activity: 2025-11-30 08:15 UTC" in markdown


def test_replies_that_did_not_finish_well_are_counted_in_one_short_phrase():
    assert stopped_or_failed({"stopped_count": 2, "error_count": 1}) == "2 stopped · 1 failed"
    assert stopped_or_failed({"stopped_count": 0, "error_count": 0}) == ""

