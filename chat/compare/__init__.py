"""Comparing models: one prompt sent to 2-4 targets side by side, votes, rankings, and batch runs.

Every call goes through the chat turn machinery (:mod:`chat.turns`), so each target's reply is recorded
exactly like a chat reply (usage, cost, status, partial text when stopped) in a conversation of its own
with ``source="compare"``, linked to one compare run (``compare_runs``) that holds the prompt, the settings
and the vote. "Continue this column as a chat" is then just opening that conversation on the chat page.

- :mod:`~chat.compare.targets`: what is compared (a model and its settings) and the checks on a request.
- :mod:`~chat.compare.runs`: one interactive run, its columns streamed in parallel, and their figures so far.
- :mod:`~chat.compare.views`: a saved run read back for display.
- :mod:`~chat.compare.votes`, :mod:`~chat.compare.ranking`: the user's verdict and the measured one.
- :mod:`~chat.compare.batch_input`, :mod:`~chat.compare.batch`: many prompts against all targets.

Labels are A, B, C, D in display order. In blind mode the targets are shuffled before labels are given,
so neither the label nor the position says which model wrote a column; the run's settings record which
target got which label, and a vote is stored as the label (or ``tie`` / ``all_bad``).

Never imports streamlit.
"""
