"""Listing past conversations: those matching the History filters, one conversation, and the values the
filters offer. Listing reads the per-conversation totals the store keeps, never ``messages``."""

from __future__ import annotations

from datetime import date

from chat.display import total_tokens
from chat.store import Filters, Store

PAGE_SIZE = 50


def with_tokens(row: dict) -> dict:
    """``row`` with ``tokens``: every kind of token it counts."""
    row["tokens"] = total_tokens(row)
    return row


def list_conversations(store: Store, filters: Filters, *, limit: int | None = PAGE_SIZE,
                       offset: int = 0) -> list[dict]:
    """Conversations matching ``filters``, last active first. Each row has the kept totals, ``models`` as a
    list, ``settings`` as a dict, ``tokens`` (all kinds) and a ``title`` (the first message when untitled)."""
    return [with_tokens(row) for row in store.list_conversations(filters, limit=limit, offset=offset)]


def count_conversations(store: Store, filters: Filters) -> int:
    return store.count_conversations(filters)


def filter_options(store: Store, user: str | None) -> dict[str, list[str]]:
    """The providers, ``provider:model`` ids and users seen in ``user``'s conversations (None: everyone's)."""
    model_lists, users = store.filter_values(Filters(user=user))
    models = sorted({m for models in model_lists for m in models})
    providers = sorted({m.partition(":")[0] for m in models})
    return {"providers": providers, "models": models, "users": users}


def get_conversation(store: Store, conversation_id: str, *, user: str | None) -> dict | None:
    """One conversation, deleted or not, if ``user`` may see it (None: anyone's)."""
    conversation = store.get_conversation(conversation_id, include_deleted=True)
    if conversation is None or (user is not None and conversation["user"] != user):
        return None
    return with_tokens(conversation)


def day_bounds(values: tuple[date | None, date | None]) -> tuple[date | None, date | None]:
    """(since, until) with the two swapped if given the wrong way round."""
    since, until = values
    if since and until and since > until:
        return until, since
    return since, until
