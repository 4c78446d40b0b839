"""chat.history.filtering: one conversation against the History filters, agreeing with their SQL."""

from datetime import date

import pytest

from chat.history.filtering import matches
from chat.history.listing import get_conversation, list_conversations
from chat.providers.base import Usage
from chat.store import Filters

CASES = [
    Filters(), Filters(user="ann"), Filters(user="bob"), Filters(source="compare"), Filters(source="chat"),
    Filters(provider="openai"), Filters(provider="anthropic"), Filters(model="openai:gpt-4o-mini"),
    Filters(model="openai:gpt-4o"), Filters(status="stopped"), Filters(status="failed"),
    Filters(status="stopped or failed"), Filters(deleted=True), Filters(since=date(2000, 1, 1)),
    Filters(until=date(2000, 1, 1)), Filters(since=date(2999, 1, 1)),
]


@pytest.mark.parametrize("status", ["complete", "stopped", "error"])
def test_a_conversation_matches_exactly_the_filters_whose_sql_lists_it(store, status):
    cid = store.create_conversation(user="ann", source="chat")
    store.add_user_message(cid, "question")
    reply = store.start_reply(cid, provider="openai", model="gpt-4o-mini")
    store.finish_reply(reply, content="answer", status=status, usage=Usage(1, 1), cost=0.1)
    row = get_conversation(store, cid, user=None)
    for filters in CASES:
        listed = cid in {r["id"] for r in list_conversations(store, filters)}
        assert matches(filters, row) == listed, filters
