"""Exports: one conversation as Markdown (to read) or JSON (to process), and a list of conversations as CSV.
Settings that look like credentials are left out of every export."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Callable

from chat.attachments import chip
from chat.display import (
    call_label,
    ending,
    figures_line,
    model_name,
    priced_cost,
    stored_time,
    thinking_body,
    thinking_label,
    title_text,
    totals_line,
)
from chat.history.search import plain_snippet
from chat.safe_text import csv_cell
from chat.store import now
from chat.tool_loop import CallRecord

EXPORT_FORMAT = "chat-workbench/conversation@1"
_SECRET_KEY = re.compile(r"key|secret|password|auth", re.IGNORECASE)


def _public_settings(settings: dict | None) -> dict | None:
    """Settings without anything that looks like a credential (none are stored; this keeps it so)."""
    if settings is None:
        return None
    return {k: v for k, v in settings.items() if not _SECRET_KEY.search(str(k))}


def settings_lines(settings: dict) -> list[str]:
    """The settings as Markdown list items; the system prompt last, quoted."""
    lines = []
    if settings.get("provider") or settings.get("model"):
        lines.append(f"- Model: {settings.get('provider', '')}:{settings.get('model', '')}")
    for key, label in (("temperature", "Temperature"), ("max_tokens", "Max output tokens")):
        value = settings.get(key)
        lines.append(f"- {label}: {'model default' if value is None else value}")
    for key, value in settings.items():
        if key not in ("provider", "model", "system", "temperature", "max_tokens"):
            lines.append(f"- {key}: {value}")
    system = (settings.get("system") or "").strip()
    lines.append("- System prompt: " + ("(none)" if not system else ""))
    if system:
        lines += ["", *("> " + line for line in system.splitlines())]
    return lines


def _fenced(text: str, language: str = "") -> list[str]:
    """``text`` in a code fence longer than any run of backticks in it, so it stays inert text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text, fence]


def _steps_markdown(steps: list[dict]) -> list[str]:
    """A reply that used tools: per step, the model's text, then each call with its arguments and its whole
    result (or error), fenced as data."""
    lines: list[str] = []
    for step in steps:
        if (step.get("text") or "").strip():
            lines += [step["text"], ""]
        for call in step.get("calls") or []:
            lines += [f"**Tool call:** {call_label(call)}", "", "Arguments:", "",
                      *_fenced(CallRecord(**call).arguments_shown, "json"), ""]
            if call.get("result") is not None:
                lines += ["Result:", "", *_fenced(call["result"]), ""]
            if call.get("error") and call.get("error") != call.get("result"):
                lines += ["Error:", "", *_fenced(call["error"]), ""]
    return lines


def conversation_markdown(conversation: dict, messages: list[dict]) -> str:
    """The transcript as Markdown: a header with the totals and settings, then each message; each reply
    with its figures line. Message text is included as written (it is Markdown already)."""
    settings = _public_settings(conversation.get("settings")) or {}
    title = title_text(conversation.get("title"))
    lines = [
        f"# {title}",
        "",
        f"- Conversation: {conversation['id']}",
        f"- User: {conversation.get('user', '')}",
        f"- Source: {conversation.get('source', '')}",
        f"- Started: {stored_time(conversation.get('created_at'))}",
        f"- Last activity: {stored_time(conversation.get('updated_at'))}",
        f"- Models: {', '.join(conversation.get('models') or []) or 'none'}",
        f"- Totals: {totals_line(conversation)}",
    ]
    if conversation.get("deleted_at"):
        lines.append(f"- Deleted: {stored_time(conversation['deleted_at'])}")
    lines += ["", "## Settings last used", "", *settings_lines(settings), ""]
    for message in messages:
        if message.get("superseded"):
            continue
        lines.append("---")
        lines.append("")
        if message["role"] == "assistant":
            lines.append(f"### Assistant ({model_name(message)})")
        else:
            lines.append(f"### {'You' if message['role'] == 'user' else message['role'].title()}")
        lines.append("")
        label = thinking_label(message) if message["role"] == "assistant" else None
        if label:  # reasoning is marked as such, quoted apart from the answer
            lines += [f"**Reasoning** ({label}):", ""]
            lines += ["> " + line if line else ">" for line in thinking_body(message).splitlines()]
            lines.append("")
        if message.get("attachments"):  # named, not embedded
            lines += [f"- Attached: {chip(meta)} ({meta['media_type']})" for meta in message["attachments"]]
            lines.append("")
        if message.get("tool_steps"):
            lines += _steps_markdown(message["tool_steps"])
        elif message.get("content"):
            lines += [message["content"], ""]
        if message["role"] == "assistant":
            end = ending(message)
            if end.notice:
                lines += [f"> {end.label.capitalize()}: {end.notice}", ""]
            lines += [f"*{figures_line(message)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


_MESSAGE_FIELDS = ("id", "position", "role", "content", "status", "error", "provider", "model", "input_tokens",
                   "output_tokens", "cache_read_tokens", "cache_write_tokens", "input_exact", "output_exact",
                   "cost", "cost_source", "ttft", "duration", "finish_reason", "tool_calls", "superseded",
                   "created_at", "updated_at", "reasoning", "reasoning_tokens", "reasoning_ttft", "reasoning_hidden",
                   "tool_steps")
_CONVERSATION_FIELDS = ("id", "title", "user", "source", "compare_run_id", "created_at", "updated_at",
                        "deleted_at", "models", "message_count", "reply_count", "input_tokens", "output_tokens",
                        "cache_read_tokens", "cache_write_tokens", "cost", "unknown_cost_count", "stopped_count",
                        "error_count")


def _files(message: dict, load: Callable[[str], bytes] | None) -> dict:
    """A message's ``attachments`` for the JSON export: name, media type, size, sha256, dimensions or pages;
    with ``load``, each file's bytes as ``data_base64`` too (a file no longer stored: null)."""
    if not message.get("attachments"):
        return {}
    out = []
    for meta in message["attachments"]:
        item = dict(meta)
        if load is not None:
            try:
                item["data_base64"] = base64.b64encode(load(meta["sha256"])).decode("ascii")
            except LookupError:
                item["data_base64"] = None
        out.append(item)
    return {"attachments": out}


def conversation_json(conversation: dict, messages: list[dict], load: Callable[[str], bytes] | None = None) -> str:
    """The conversation and all its messages (superseded ones flagged) as JSON. ``cost`` is null when
    unknown; the conversation's ``cost`` covers the priced replies and ``unknown_cost_count`` the rest.
    Attached files are described; with ``load(sha256) -> bytes`` their contents are included (base64)."""
    data = {
        "format": EXPORT_FORMAT,
        "exported_at": now(),
        "conversation": {k: conversation.get(k) for k in _CONVERSATION_FIELDS}
        | {"settings": _public_settings(conversation.get("settings")) or {}},
        "messages": [{k: message.get(k) for k in _MESSAGE_FIELDS}
                     | {"settings": _public_settings(message.get("settings"))}
                     | _files(message, load)
                     | ({"ending": ending(message).label} if message["role"] == "assistant" else {})
                     for message in messages],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


CSV_COLUMNS = ("id", "title", "user", "source", "models", "messages", "replies", "input_tokens", "output_tokens",
               "cache_read_tokens", "cache_write_tokens", "total_tokens", "cost_usd", "replies_of_unknown_cost",
               "stopped_replies", "failed_replies", "created_at", "last_activity")


def table_csv(rows: list[dict], *, with_match: bool = False) -> str:
    """Conversations (as listed or searched) as CSV, one row each. ``cost_usd`` is the priced part and is
    empty when no reply has a known price; ``replies_of_unknown_cost`` says how many are unpriced."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, *(("match",) if with_match else ())])
    for row in rows:
        unknown = row.get("unknown_cost_count") or 0
        cost = priced_cost(row.get("cost"), unknown)
        values = [
            row["id"], csv_cell(row.get("title", "")), csv_cell(row.get("user", "")), row.get("source", ""),
            " ".join(row.get("models") or []), row.get("message_count", 0), row.get("reply_count", 0),
            row.get("input_tokens", 0), row.get("output_tokens", 0), row.get("cache_read_tokens", 0),
            row.get("cache_write_tokens", 0), row.get("tokens", 0), "" if cost is None else f"{cost:.6f}", unknown,
            row.get("stopped_count", 0), row.get("error_count", 0), row.get("created_at", ""),
            row.get("updated_at", ""),
        ]
        if with_match:
            values.append(csv_cell(plain_snippet(row.get("snippet", ""))))
        writer.writerow(values)
    return out.getvalue()

