"""One chat turn: the user's message saved first, the reply streamed, its usage, cost and status recorded.

A page builds a :class:`TurnContexts` (store, providers, pricer, limits), takes a turn's :class:`TurnContext`
with ``for_model``, and calls :func:`send` (or :func:`regenerate` / :func:`edit_last`) to get a :class:`Turn`,
then feeds ``turn.stream()`` to ``st.write_stream``. The modules, one job each: settings (what a turn runs
with), request (what it sends), turn (the reply streamed and recorded), cost (what its model calls cost),
actions (send, answer, regenerate, edit), versions (the last reply's versions), estimate (what the next send
would cost).
"""

from chat.turns.actions import CONTINUE_PROMPT, answer, edit_last, files_sent, regenerate, send
from chat.turns.estimate import NextCost, next_cost
from chat.turns.request import fit_context, history_from_rows, message_tokens, with_file_data
from chat.turns.settings import TurnContext, TurnContexts, TurnSettings, settings_to_restore
from chat.turns.turn import Turn
from chat.turns.versions import last_position, reply_versions, show_version

__all__ = [
    "CONTINUE_PROMPT", "NextCost", "Turn", "TurnContext", "TurnContexts", "TurnSettings",
    "answer", "edit_last", "files_sent", "fit_context", "history_from_rows", "last_position", "message_tokens",
    "next_cost", "regenerate", "reply_versions", "send", "settings_to_restore", "show_version", "with_file_data",
]
