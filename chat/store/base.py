"""The Store callers use: one class made of the store's parts, which each engine completes.

``chat.store.open_store(target)`` opens the engine ``target`` names. One Store is meant to live in
``st.cache_resource``; it hands out pooled connections to one thread at a time, and a thread that asks again
while it holds one gets the same one back. Each part is a module of its own: conversations, messages (with
their attachments), replies, compare runs and History's reporting queries, over what each engine provides
(:mod:`chat.store.engine`).
"""

from __future__ import annotations

from chat.store.compare_runs import CompareRuns
from chat.store.conversations import Conversations
from chat.store.messages import Messages
from chat.store.replies import Replies
from chat.store.reporting import Reporting


class Store(Conversations, Messages, Replies, CompareRuns, Reporting):
    """The interface, and the logic both engines share: :class:`chat.store.sqlite.SqliteStore` and
    :class:`chat.store.postgres.PostgresStore` are the two kinds there are."""
