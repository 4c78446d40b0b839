"""Every word the user reads about a reply: how it ended, its figures (one line, or a compare column's short
lines), totals of tokens and cost, its conversation's title and stored times, a compare target's settings. Pure
functions over stored rows, used alike by the Chat, Compare and History pages and the exports; the store and the
table-making modules (chat/compare/, chat/history/) take their words from here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chat.safe_text import escape_markdown
from chat.timestamps import parse_stamp
from chat.usage import TOKEN_COLUMNS

HIDDEN_REASONING = "reasoning hidden by the provider"

# ---------------------------------------------------------------- a cost, a token count


def format_cost(usd: float | None, *, estimated: bool = False) -> str:
    """"cost unknown" for None; "$1.23" from one cent up; two significant digits below ("$0.0025",
    "$0.00031"); "$0.00" for a true zero; "≈" in front when estimated."""
    if usd is None or not math.isfinite(usd):
        return "cost unknown"
    prefix = "≈" if estimated else ""
    sign = "-" if usd < 0 else ""
    value = abs(usd)
    if value == 0:
        return f"{prefix}$0.00"
    if value < 0.01:
        digits = 1 - math.floor(math.log10(value))  # decimals that leave two significant digits
        rounded = round(value, digits)
        if rounded < 0.01:
            return f"{prefix}{sign}${rounded:.{digits}f}"
    return f"{prefix}{sign}${value:,.2f}"


def format_tokens(n: int | None, *, estimated: bool = False) -> str:
    """"1,234", "≈1,234" when estimated, "unknown" for None."""
    if n is None:
        return "unknown"
    return f"{'≈' if estimated else ''}{n:,}"


# ---------------------------------------------------------------- how a reply ended

INTERRUPTED_ERROR = "The app stopped before this reply finished."  # stored as the reply's error (exports show it)
INTERRUPTED_NOTICE = ("This reply was interrupted (the app stopped while it streamed). The text above is what had "
                      "arrived.")
UNFINISHED_NOTICE = ("The reply ended before the provider finished it. The text above is what arrived; retry to "
                     "get a whole one.")
CUT_FINISHES = frozenset({"length", "max_tokens", "max_output_tokens", "model_context_window_exceeded"})
TOOL_FINISHES = frozenset({"tool_calls", "tool_use", "function_call"})
FILTER_FINISHES = frozenset({"content_filter"})
REFUSAL_FINISHES = frozenset({"refusal"})
PAUSE_FINISHES = frozenset({"pause_turn"})


@dataclass(frozen=True)
class Ending:
    """How a reply ended, in words. ``word`` goes in the figures line and tables (None for a reply that
    simply finished); ``notice`` is one sentence shown with the reply; ``tone`` is info, warning or error;
    ``action`` is the button the reply offers (retry or continue); ``left_out``: the exchange is not sent
    again in later requests."""

    word: str | None
    notice: str | None = None
    tone: str = "info"
    action: str | None = None
    left_out: bool = False

    @property
    def label(self) -> str:
        """The word for a table cell, where a reply that simply finished needs one too."""
        return self.word or "complete"


def ending(row: dict) -> Ending:
    status = row.get("status")
    if status == "streaming":
        return Ending("streaming…")
    if status == "stopped":
        return Ending("stopped by you", action="retry")
    if status == "error":
        return Ending("failed", row.get("error"), "error", "retry")
    if status == "interrupted":
        return Ending("interrupted", INTERRUPTED_NOTICE, "warning", "retry")
    if row.get("finish_reason") == "step_limit":
        return Ending("stopped at the step limit", "The model kept asking for tools and reached this reply's step "
                      "limit (CHAT_TOOL_STEPS) before it answered. Retry, or ask it to answer with what it has.",
                      "warning", "retry")
    if status == "unfinished":
        return Ending("unfinished", UNFINISHED_NOTICE, "warning", "retry")
    finish = row.get("finish_reason")
    if finish in CUT_FINISHES:
        return Ending("cut at the output limit", "The reply reached its output limit and was cut. Continue asks "
                      "the model to go on; a larger Max output tokens in Settings avoids the cut.", "info", "continue")
    if finish in FILTER_FINISHES:
        return Ending("blocked by the content filter", "The provider's content filter stopped this reply. The "
                      "exchange is left out of later messages in this chat.", "warning", left_out=True)
    if finish in REFUSAL_FINISHES:
        return Ending("refused", "The model refused to answer. The exchange is left out of later messages in this "
                      "chat, so it does not invite more refusals.", "warning", left_out=True)
    if finish in TOOL_FINISHES or (row.get("tool_calls") and finish not in PAUSE_FINISHES):
        names = list(dict.fromkeys(row.get("tool_calls") or []))
        what = ("a tool" if not names else f"the tool {names[0]}" if len(names) == 1
                else "the tools " + ", ".join(names))
        return Ending("tool call not run", f"The model asked to use {what}; tools are not enabled here.", "info")
    if finish in PAUSE_FINISHES:
        return Ending("paused", "The provider paused this reply before it finished. Continue asks it to go on.",
                      "info", "continue")
    if "content" in row and not (row.get("content") or "").strip():
        return Ending("empty", "The model finished without saying anything. Regenerate to ask again.", "info")
    return Ending(None)


def cost_text(row: dict, *, estimated: bool) -> str:
    """The cost of one reply, marked when it is the provider's own figure rather than our price."""
    text = format_cost(row.get("cost"), estimated=estimated)
    if row.get("cost_source") == "provider" and row.get("cost") is not None:
        text += " (provider's figure)"
    return text


def tokens_per_second(row: dict) -> float | None:
    """Output tokens over the time they took to generate: from the first output (the first reasoning token,
    else the first answer token) to the end. Reasoning the provider counted but did not show was generated
    from the start, so then the whole duration counts."""
    out, duration, ttft = row.get("output_tokens"), row.get("duration"), row.get("ttft")
    if not out or duration is None:
        return None
    if row.get("reasoning_ttft") is not None:
        start = row["reasoning_ttft"]
    elif row.get("reasoning_tokens"):
        start = 0.0
    else:
        start = ttft or 0.0
    generating = duration - start
    if generating <= 0.05:  # a single burst: no meaningful rate
        return None
    return out / generating


def estimated(row: Mapping) -> bool:
    """Whether a reply's cost rests on estimated tokens (a refused call has no tokens: nothing estimated)."""
    counted = [k for k in ("input", "output") if row.get(f"{k}_tokens") is not None]
    return any(not row.get(f"{k}_exact") for k in counted)


def input_text(row: Mapping) -> str | None:
    """ "1,000 in" ("≈1,000 in" when estimated)."""
    if row.get("input_tokens") is None:
        return None
    return f"{format_tokens(row['input_tokens'], estimated=not row.get('input_exact'))} in"


def output_text(row: Mapping) -> str | None:
    """ "1,240 out", with the reasoning within it when known: "1,240 out, 980 of them reasoning"."""
    if row.get("output_tokens") is None:
        return None
    estimated = not row.get("output_exact")
    text = f"{format_tokens(row['output_tokens'], estimated=estimated)} out"
    if row.get("reasoning_tokens"):
        text += f", {format_tokens(row['reasoning_tokens'], estimated=estimated)} of them reasoning"
    return text


def format_seconds(value: float) -> str:
    """A measured time in a reply's figures: "0.42 s"."""
    return f"{value:.2f} s"


def first_token_parts(row: dict) -> list[str]:
    """Time to the first token; for a reply that reasoned visibly, to the first reasoning and answer token."""
    parts = []
    if row.get("reasoning_ttft") is not None:
        parts.append(f"{format_seconds(row['reasoning_ttft'])} to first reasoning token")
        if row.get("ttft") is not None:
            parts.append(f"{format_seconds(row['ttft'])} to first answer token")
    elif row.get("ttft") is not None:
        parts.append(f"{format_seconds(row['ttft'])} to first token")
    return parts


def reasoned(row: dict) -> bool:
    """The reply reasoned where it shows: reasoning text, reasoning hidden by the provider, or reasoning tokens."""
    return bool(row.get("reasoning") or row.get("reasoning_hidden") or row.get("reasoning_tokens"))


def _thought_seconds(value: float) -> str:
    """How long a model thought, rounded as a title reads it: "4.2 s", "42 s"."""
    return f"{value:.1f} s" if value < 10 else f"{value:,.0f} s"


def thinking_label(row: dict) -> str | None:
    """The Thinking section's title for a stored reply ("Thought for 42 s"), or None when it did not reason."""
    if not reasoned(row):
        return None
    seconds = row.get("ttft") if row.get("ttft") is not None else row.get("duration")
    return "Thought" if seconds is None else f"Thought for {_thought_seconds(seconds)}"


def thinking_live_label(seconds: float | None) -> str:
    """The Thinking section's title while the model thinks, in whole seconds (it changes once a second)."""
    return "Thinking…" if not seconds or seconds < 1 else f"Thinking for {int(seconds):,} s…"


def thinking_body(row: dict) -> str:
    """What the Thinking section holds: the reasoning text, or a sentence saying why there is none."""
    parts = []
    if row.get("reasoning"):
        parts.append(row["reasoning"])
    if row.get("reasoning_hidden"):
        parts.append(f"*Part of the {HIDDEN_REASONING}.*" if row.get("reasoning") else
                     f"*The {HIDDEN_REASONING}.*")
    if not parts:
        count = row.get("reasoning_tokens")
        parts.append(f"*The provider sent no reasoning text{f' ({count:,} reasoning tokens)' if count else ''}.*")
    return "\n\n".join(parts)


def cache_parts(row: dict) -> list[str]:
    """The prompt cache's share of a reply's input, and what it saved: ["1,000 from cache", "200 to cache"]."""
    parts = []
    if row.get("cache_read_tokens"):
        parts.append(f"{format_tokens(row['cache_read_tokens'])} from cache")
    if row.get("cache_write_tokens"):
        parts.append(f"{format_tokens(row['cache_write_tokens'])} to cache")
    return parts


def cache_saving_text(row: dict) -> str | None:
    """ "caching saved $0.0027", or "caching cost $0.0004 more" on the turn that wrote the cache."""
    saved = row.get("cache_saved")
    if saved is None or row.get("status") == "streaming" or abs(saved) < 5e-7:
        return None
    if saved > 0:
        return f"caching saved {format_cost(saved)}"
    return f"caching cost {format_cost(-saved)} more"


def sent_at(stamp: str | None, tz: str | None = None, *, today: date | None = None) -> str:
    """When a message was sent, for the page: "14:03" today, "29 Nov 14:03" this year, "2025-11-29 14:03"
    before, in the viewer's time zone ``tz`` (an IANA name from the browser), else in UTC marked "UTC"."""
    if not stamp:
        return ""
    try:
        when = parse_stamp(stamp)
    except ValueError:
        return ""
    zone, suffix = UTC, " UTC"
    if tz:
        try:
            zone, suffix = ZoneInfo(tz), ""
        except (ZoneInfoNotFoundError, ValueError):
            pass
    local = when.astimezone(zone)
    today = today or datetime.now(zone).date()
    if local.date() == today:
        text = local.strftime("%H:%M")
    elif local.year == today.year:
        text = f"{local.day} {local.strftime('%b %H:%M')}"
    else:
        text = local.strftime("%Y-%m-%d %H:%M")
    return text + suffix


def model_name(row: Mapping) -> str:
    """The model a reply came from, as the figures line and the exports name it."""
    return row.get("model") or "unknown model"


def stored_time(stamp: str | None) -> str:
    """A time the store wrote (see chat.timestamps.stamp), shown as written, in UTC: "2025-11-29 14:03 UTC"; for
    tables and exports, where :func:`sent_at`'s time in the viewer's zone is not the point."""
    return f"{stamp[:10]} {stamp[11:16]} UTC" if stamp else ""


def title_text(title: str | None) -> str:
    """A conversation's title, or "Untitled" for one without."""
    return title or "Untitled"


def figures_line(row: dict, *, when: str | None = None) -> str:
    """model · in · from cache · out · cost · caching saved · first token · speed · how it ended · when, with
    "≈" on estimates. ``when``: the time to show (see :func:`sent_at`); pages show it, exports have their own."""
    parts = [model_name(row)]
    inp = input_text(row)
    if inp:
        parts.append(inp)
    parts += cache_parts(row)
    out = output_text(row)
    if out:
        parts.append(out)
    if row.get("status") != "streaming":
        parts.append(cost_text(row, estimated=estimated(row)))
    saving = cache_saving_text(row)
    if saving:
        parts.append(saving)
    parts += first_token_parts(row)
    rate = tokens_per_second(row)
    if rate is not None:
        parts.append(f"{rate:,.0f} tok/s")
    breakdown = steps_breakdown(row.get("tool_steps"))
    if breakdown:
        parts.append(breakdown)
    word = ending(row).word
    if word:
        parts.append(word)
    if when:
        parts.append(when)
    return " · ".join(parts)


def column_figures(row: Mapping) -> list[str]:
    """A compare column's figures, in the words of :func:`figures_line` laid out as short lines for a narrow
    column: timing; tokens; cost and how it ended."""
    timing = first_token_parts(dict(row))
    if row.get("duration") is not None:
        timing.append(f"{row['duration']:.1f} s so far" if row.get("status") == "streaming"
                      else f"{format_seconds(row['duration'])} total")
    rate = tokens_per_second(dict(row))
    if rate is not None:
        timing.append(f"{rate:,.0f} tok/s")
    counts = [text for text in (input_text(row), output_text(row)) if text]
    lines = [" · ".join(timing), " · ".join(counts)]
    if row.get("status") != "streaming" or "cost" in row:
        last = [cost_text(dict(row), estimated=estimated(row) or row.get("status") == "streaming")]
        word = ending(dict(row)).word
        if word and row.get("status") != "streaming":
            last.append(word)
        lines.append(" · ".join(last))
    return [line for line in lines if line]


def sent_note(row: dict, tz: str | None = None) -> str | None:
    """The hover text on a user's message: "Sent 14:03"."""
    when = sent_at(row.get("created_at"), tz)
    return f"Sent {when}" if when else None


def context_dropped_note(dropped: int) -> str:
    """Under a reply whose request left older messages out to fit the model's context window."""
    return (f"{dropped} older message{'s were' if dropped != 1 else ' was'} left out of this request to fit the "
            "model's context window.")


WRITTEN_ELSEWHERE = "Being written by another app server; it can be stopped there."  # a reply followed live
SOME_WRITTEN_ELSEWHERE = ("Some replies of this comparison are being written by another app server; reload to see "
                          "them finish.")


def version_label(index: int, count: int) -> str:
    """ "1 / 2": which version of the last reply is shown, of how many (Regenerate adds one)."""
    return f"{index + 1} / {count}"


def next_cost_line(estimate) -> str:
    """Under the input: what sending the conversation as it stands would cost (a chat.turns.NextCost)."""
    model = escape_markdown(estimate.model)
    head = f"Next send to {model}: ≈{estimate.input_tokens:,} tokens of this chat + your message"
    if estimate.input_cost is None or estimate.total_cost is None:
        return f"{head}; {format_cost(None)} (no price for this model)."
    return (f"{head}, ≈{format_cost(estimate.input_cost)} in; up to ≈{format_cost(estimate.total_cost)} with a "
            f"reply of {estimate.output_tokens:,} tokens.")


BLIND_FIGURES = "Cost, tokens and timing are hidden until you vote: they would give the model away."
BLIND_TARGETS = "Targets are hidden until you vote on this blind comparison."


def blind_figures(row: dict) -> list[str]:
    """A blind comparison's column before the vote: how the reply ended, and nothing that tells the model."""
    word = ending(row).word if row.get("status") != "streaming" else None
    return ([f"{word[0].upper()}{word[1:]}."] if word else []) + [BLIND_FIGURES]


# ---------------------------------------------------------------- a reply's tool steps
CALL_STATUS = {"waiting": "waiting for your approval", "running": "running…", "done": "done", "failed": "failed",
               "denied": "denied by you", "stopped": "stopped", "skipped": "not run (step limit reached)"}
APPROVAL_QUESTION = ("This tool is not marked read-only by its server: it may change things. Run it with these "
                     "arguments?")
DENIED_NOTE = "You denied this call; the model was told so."
SKIPPED_AT_STEP_LIMIT = "The step limit was reached."  # a call not run, as its error says
APPROVAL_ELSEWHERE = "A tool call waits for approval in the tab where this reply was started."
CONNECTING_TOOLS = "Connecting to the tool servers…"


def retrying(failed_attempts: int) -> str:
    """What a reply says while the SDK retries before it streams."""
    return f"The provider is busy; retrying (attempt {failed_attempts + 1})…"


def steps_breakdown(steps: list[dict] | None) -> str | None:
    """The model calls of a reply that used tools, each with its tokens: "2 model calls: 310 + 420 tokens"."""
    if not steps:
        return None
    counts = []
    for step in steps:
        if step.get("input_tokens") is None and step.get("output_tokens") is None:
            counts.append("unknown")
        else:
            counts.append(format_tokens((step.get("input_tokens") or 0) + (step.get("output_tokens") or 0),
                                        estimated=not step.get("exact", True)))
    n = len(steps)
    return f"{n} model call{'s' if n != 1 else ''}: {' + '.join(counts)} tokens"


def call_label(call: dict) -> str:
    """A tool call's title: "lookup (docs) · done in 0.31 s"."""
    where = f" ({call['server']})" if call.get("server") else ""
    status = call.get("status") or "running"
    text = f"{call.get('tool') or call.get('wire_name') or 'tool'}{where} · {CALL_STATUS.get(status, status)}"
    if call.get("duration") is not None and status in ("done", "failed", "stopped"):
        text += f" in {call['duration']:.2f} s"
    return escape_markdown(text)


def truncated_note(shown_chars: int, total: int) -> str:
    return (f"The first {shown_chars:,} of {total:,} characters are shown; the whole result is kept with the reply "
            "and in its exports.")


def total_tokens(row: Mapping) -> int:
    """Every token a reply or a total counts: input, output, and from and to the prompt cache."""
    return sum(row.get(k) or 0 for k in TOKEN_COLUMNS)


def priced_cost(cost: float | None, unknown: int = 0) -> float | None:
    """The known part of several replies' cost, or None when replies of unknown cost were all there was
    (never an unknown counted as $0)."""
    return None if unknown and not cost else cost or 0.0


def total_cost_text(cost: float | None, unknown: int = 0, *, estimated: bool = False) -> str:
    """The cost of several replies, never an unknown shown as $0: "cost unknown" when none is priced,
    "$0.031 + 2 replies of unknown cost" when some are."""
    known = priced_cost(cost, unknown)
    if known is None:
        return format_cost(None)
    text = format_cost(known, estimated=estimated)
    if unknown:
        text += f" + {unknown} repl{'y' if unknown == 1 else 'ies'} of unknown cost"
    return text


def totals_line(totals: Mapping) -> str:
    """A conversation's (or any group's) totals: "1,200 tokens · $0.01 + 1 reply of unknown cost"."""
    cost = total_cost_text(totals.get("cost"), totals.get("unknown_cost_count") or 0)
    return f"{format_tokens(total_tokens(totals))} tokens · {cost}"


def stopped_or_failed(totals: Mapping) -> str:
    """A conversation's replies that did not finish well: "2 stopped · 1 failed" (empty when none)."""
    parts = []
    if totals.get("stopped_count"):
        parts.append(f"{totals['stopped_count']} stopped")
    if totals.get("error_count"):
        parts.append(f"{totals['error_count']} failed")
    return " · ".join(parts)


# ---------------------------------------------------------------- a compare target's settings


def describe_settings(settings: Mapping, *, temperature_supported: bool = True) -> str:
    """The parameters that set a target apart: "temperature 0.2 · max 512 tokens"."""
    parts = []
    if settings.get("temperature") is not None:
        unsent = "" if temperature_supported else " (not sent: this provider takes none)"
        parts.append(f"temperature {settings['temperature']:g}{unsent}")
    if settings.get("max_tokens") is not None:
        parts.append(f"max {settings['max_tokens']:,} tokens")
    return " · ".join(parts)


def target_settings_text(settings: Mapping, *, temperature_supported: bool = True) -> str:
    """A compare column's header line: its parameters, "system prompt set" when it has one, else "model
    defaults"."""
    detail = describe_settings(settings, temperature_supported=temperature_supported)
    if settings.get("system"):
        detail = " · ".join(filter(None, [detail, "system prompt set"]))
    return detail or "model defaults"
