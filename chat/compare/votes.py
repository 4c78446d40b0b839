"""The user's verdict on a run: one label, a tie, or all bad."""

from __future__ import annotations

from collections.abc import Sequence

from chat.compare.targets import CompareError
from chat.store import Store

TIE = "tie"
ALL_BAD = "all_bad"


def vote_choices(labels: Sequence[str]) -> list[tuple[str, str]]:
    """(value, button text) for each vote: "A is better" ... "Tie", "Both bad" (or "All bad")."""
    word = "better" if len(labels) == 2 else "best"
    choices = [(label, f"{label} is {word}") for label in labels]
    choices.append((TIE, "Tie"))
    choices.append((ALL_BAD, "Both bad" if len(labels) == 2 else "All bad"))
    return choices


def vote_text(vote: str | None, labels: Sequence[str]) -> str | None:
    return dict(vote_choices(labels)).get(vote) if vote else None


def cast_vote(store: Store, run_id: str, vote: str | None) -> None:
    """Record (or with None, clear) the vote of a run; only the run's labels, tie and all_bad are valid."""
    run = store.get_compare_run(run_id)
    if run is None:
        raise CompareError("That comparison no longer exists.")
    labels = [t.get("label") for t in run["settings"].get("targets", [])]
    if vote is not None and vote not in dict(vote_choices(labels)):
        raise CompareError(f"{vote!r} is not a vote for this comparison.")
    store.set_compare_vote(run_id, vote)
