"""What a comparison compares: targets (a model and the settings it answers with), and the checks a request
must pass before anything is saved."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from chat import turns
from chat.config import ModelId, parse_model_id
from chat.providers.base import Params, Provider

MIN_TARGETS = 2
MAX_TARGETS = 4
LABELS = "ABCD"

WindowFor = Callable[[ModelId], "int | None"]


class CompareError(ValueError):
    """A compare request that cannot run as asked; ``str(error)`` is one sentence for the UI."""


@dataclass(frozen=True)
class Target:
    """One side of a comparison: a model and the settings it answers with. The same model may appear
    twice with different settings."""

    model_id: ModelId
    system: str | None = None
    params: Params = Params()

    @classmethod
    def parse(cls, value: str, *, system: str | None = None, temperature: float | None = None,
              max_tokens: int | None = None) -> Target:
        return cls(parse_model_id(value), (system or "").strip() or None,
                   Params(temperature=temperature, max_tokens=max_tokens))

    @property
    def name(self) -> str:
        return str(self.model_id)

    def turn_settings(self) -> turns.TurnSettings:
        return turns.TurnSettings(model_id=self.model_id, system=self.system, params=self.params)

    def as_dict(self) -> dict:
        return self.turn_settings().as_dict()


def describe_settings(settings: Mapping, *, temperature_supported: bool = True) -> str:
    """The parameters that set a target apart, for a column header: "temperature 0.2 · max 512 tokens"."""
    parts = []
    if settings.get("temperature") is not None:
        unsent = "" if temperature_supported else " (not sent: this provider takes none)"
        parts.append(f"temperature {settings['temperature']:g}{unsent}")
    if settings.get("max_tokens") is not None:
        parts.append(f"max {settings['max_tokens']:,} tokens")
    return " · ".join(parts)


def check_targets(targets: Sequence[Target], providers: Mapping[str, Provider]) -> None:
    if not MIN_TARGETS <= len(targets) <= MAX_TARGETS:
        raise CompareError(f"Choose between {MIN_TARGETS} and {MAX_TARGETS} targets to compare.")
    check_providers(targets, providers)


def check_providers(targets: Sequence[Target], providers: Mapping[str, Provider]) -> None:
    """Every target's provider is configured."""
    missing = sorted({t.model_id.provider for t in targets} - set(providers))
    if missing:
        raise CompareError(f"No provider named {', '.join(missing)} is configured; pick another target.")
