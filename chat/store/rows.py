"""What the store gives back as typed rows (a message, a conversation, a compare run, History's sums), and
how a row read from either engine is decoded into one. They stay dicts (pages and exports read them as such),
and their types say what each field holds once decoded; a test keeps these in step with the tables on both
engines."""

from __future__ import annotations

import json
from typing import Any, TypedDict

SOURCES = ("chat", "compare")  # where a conversation was started
FINAL_STATUSES = ("complete", "unfinished", "stopped", "error", "interrupted")  # how a reply may end
FAILED_STATUSES = ("error", "interrupted", "unfinished")  # the endings counted as failed (not stopped by the user)


def check_source(source: str) -> None:
    """Refuse a conversation source the store does not know (ValueError)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")


class MessageRow(TypedDict):
    """One message: a user's, or an assistant reply with how it ended, what it used and what it cost."""

    id: int
    conversation_id: str
    position: int  # its place in the conversation, from 1
    role: str  # "user" or "assistant"
    content: str
    status: str  # complete, streaming, stopped, unfinished, error, interrupted… (see chat/display.ending)
    error: str | None  # the one sentence on a failed reply
    provider: str | None
    model: str | None
    settings: dict[str, Any] | None  # what produced a reply (model, system prompt, parameters)
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    input_exact: bool  # the provider's count, not our estimate
    output_exact: bool
    cost: float | None  # USD; None when unknown
    ttft: float | None  # seconds to the first token
    duration: float | None
    finish_reason: str | None  # as the provider said it
    superseded: bool  # an earlier version of a regenerated reply, or an edited message
    created_at: str
    updated_at: str
    tool_calls: list[dict[str, Any]]  # tool calls a reply asked for when tools were not enabled
    cost_source: str | None  # "provider" when the provider's own figure
    reserved_cost: float | None  # what the spend limit held for it while it streamed
    reasoning: str | None
    reasoning_tokens: int | None
    reasoning_ttft: float | None
    reasoning_hidden: int | None
    cache_saved: float | None
    tool_steps: list[dict[str, Any]] | None  # the model calls of a reply that used tools
    attachments: list[dict[str, Any]]  # files sent with a user message (metadata; the bytes by sha256); [] on a reply


class ConversationRow(TypedDict):
    """One conversation with the totals kept on it."""

    id: str
    user: str
    title: str
    source: str  # chat or compare (a batch's calls are compare conversations): SOURCES
    compare_run_id: str | None
    created_at: str
    updated_at: str
    deleted_at: str | None
    settings: dict[str, Any]
    message_count: int
    reply_count: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: float
    unknown_cost_count: int
    models: list[str]
    stopped_count: int
    error_count: int


class CompareRunRow(TypedDict):
    """One compare run: a prompt sent to several targets, one conversation each."""

    id: str
    user: str
    prompt: str
    settings: dict[str, Any]  # the targets, and "mode" ("single" or "batch"; a batch's id and prompt index)
    vote: str | None  # a target's label, "tie" or "all_bad"; None before a vote
    blind: bool  # labels hidden until the vote
    created_at: str


class CompareReplyRow(MessageRow):
    """The compared reply of one of a run's conversations: a message row with the run and the settings of
    its conversation (the target it was sent to)."""

    compare_run_id: str
    conversation_settings: dict[str, Any]


class SummaryRow(TypedDict):
    """History's sums over the conversations matching its filters."""

    conversations: int
    messages: int
    replies: int
    tokens: int  # input, output and cache reads and writes (chat.display.total_tokens)
    cost: float  # the known cost, USD
    unknown_cost_count: int  # replies whose cost is unknown


class UserUsageRow(TypedDict):
    """One user's usage over the conversations matching History's filters."""

    user: str
    conversations: int
    messages: int
    tokens: int
    cost: float
    unknown_cost_count: int


def conversation_row(row: dict) -> ConversationRow:
    row.pop("rowid", None)  # PostgreSQL's stand-in for SQLite's rowid: the order rows were created in
    row["settings"] = json.loads(row["settings"] or "{}")
    row["models"] = json.loads(row["models"] or "[]")
    return row


def message_row(row: dict) -> MessageRow:
    for column in ("search_vector", "owner", "conversation_deleted"):  # PostgreSQL's search columns
        row.pop(column, None)
    row["settings"] = None if row["settings"] is None else json.loads(row["settings"])
    row["tool_calls"] = json.loads(row["tool_calls"]) if row.get("tool_calls") else []
    if "tool_steps" in row:
        row["tool_steps"] = json.loads(row["tool_steps"]) if row["tool_steps"] else None
    for flag in ("input_exact", "output_exact", "superseded"):
        row[flag] = bool(row[flag])
    return row


def reply_row(row: dict) -> MessageRow:
    """A reply as a message row: no files are sent with a reply."""
    row = message_row(row)
    row["attachments"] = []
    return row


def compare_run_row(row: dict) -> CompareRunRow:
    """A compare run with its settings decoded and ``blind`` as a bool."""
    row.pop("rowid", None)
    row["settings"] = json.loads(row["settings"] or "{}")
    row["blind"] = bool(row["blind"])
    return row
