"""A saved compare run read back for display: its columns in label order, whether the models may be named
yet (blind mode), and what a column is called."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chat.store import Store


@dataclass(frozen=True)
class RunColumn:
    label: str
    conversation_id: str
    settings: dict  # provider, model, system, temperature, max_tokens, label
    reply: dict  # the compared reply: the conversation's first assistant message

    @property
    def name(self) -> str:
        return f"{self.settings.get('provider')}:{self.settings.get('model')}"


@dataclass(frozen=True)
class RunView:
    run: dict
    columns: list[RunColumn]

    @property
    def id(self) -> str:
        return self.run["id"]

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.columns]

    @property
    def vote(self) -> str | None:
        return self.run.get("vote")

    @property
    def revealed(self) -> bool:
        """Whether the model names may be shown: always, unless blind and not yet voted."""
        return not self.run.get("blind") or self.vote is not None

    @property
    def streaming(self) -> bool:
        return any(c.reply.get("status") == "streaming" for c in self.columns)


def load_run(store: Store, run_id: str, *, user: str | None = None) -> RunView | None:
    """A saved run with its columns in label order; None if unknown (or another user's)."""
    run = store.get_compare_run(run_id)
    if run is None or (user is not None and run["user"] != user):
        return None
    columns = []
    for row in store.compare_replies([run_id]):
        settings = row.pop("conversation_settings")
        columns.append(RunColumn(settings.get("label") or "?", row["conversation_id"], settings, row))
    columns.sort(key=lambda c: c.label)
    return RunView(run, columns)


def anonymise(text: str, names: Iterable[str]) -> str:
    """``text`` (an error hint, say) with the provider's names replaced, for blind mode: "OpenAI is
    overloaded right now." -> "The provider is overloaded right now." """
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        if text.startswith(name):
            text = "The provider" + text[len(name):]
        text = text.replace(name, "the provider")
    return text


def column_title(view: RunView, column: RunColumn) -> str:
    if not view.revealed:
        return f"{column.label}: model hidden"
    return f"{column.label}: {column.name}"
