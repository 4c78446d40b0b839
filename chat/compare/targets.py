"""What a comparison compares: targets (each a :class:`chat.turns.TurnSettings`: a model and the settings it
answers with), and the checks a request must pass before anything is saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chat import turns
from chat.providers.base import Provider

MIN_TARGETS = 2
MAX_TARGETS = 4
LABELS = "ABCD"


class CompareError(ValueError):
    """A compare request that cannot run as asked; ``str(error)`` is one sentence for the UI."""


def check_targets(targets: Sequence[turns.TurnSettings], providers: Mapping[str, Provider]) -> None:
    if not MIN_TARGETS <= len(targets) <= MAX_TARGETS:
        raise CompareError(f"Choose between {MIN_TARGETS} and {MAX_TARGETS} targets to compare.")
    check_providers(targets, providers)


def check_providers(targets: Sequence[turns.TurnSettings], providers: Mapping[str, Provider]) -> None:
    """Every target's provider is configured."""
    missing = sorted({t.model_id.provider for t in targets} - set(providers))
    if missing:
        raise CompareError(f"No provider named {', '.join(missing)} is configured; pick another target.")
