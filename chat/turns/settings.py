"""What a turn runs with: :class:`TurnSettings` (what produces the reply: model, system prompt, parameters,
tools) and :class:`TurnContext` (where it is stored, who answers, what it costs, its limits)."""

from __future__ import annotations

from dataclasses import dataclass

from chat.config import ModelId, parse_model_id
from chat.pricing import Pricer
from chat.providers.base import Params, Provider
from chat.store import Store
from chat.tool_loop import ToolRunner


@dataclass(frozen=True)
class TurnSettings:
    """What produces a reply: a model, the system prompt and the parameters it answers with. Recorded on the
    reply so one can always tell what produced it. A chat turn has one; each target of a comparison or a
    batch is one (the same model may appear twice with different settings)."""

    model_id: ModelId
    system: str | None = None
    params: Params = Params()
    tools: tuple[str, ...] = ()  # the MCP servers whose tools the model may use (by name)

    @classmethod
    def parse(cls, value: str, *, system: str | None = None, temperature: float | None = None,
              max_tokens: int | None = None) -> TurnSettings:
        """Settings from a ``provider:model`` id and the parameters a form gives (a blank system prompt: none)."""
        return cls(parse_model_id(value), (system or "").strip() or None,
                   Params(temperature=temperature, max_tokens=max_tokens))

    @property
    def name(self) -> str:
        return str(self.model_id)

    def as_dict(self) -> dict:
        return {"provider": self.model_id.provider, "model": self.model_id.model, "system": self.system or "",
                **self.params.as_dict(), **({"tools": list(self.tools)} if self.tools else {})}



@dataclass(frozen=True)
class TurnContext:
    """What a turn runs with besides its conversation and settings: where it is stored, who answers, what it
    costs, and its limits. A page builds one per turn it starts; a comparison one per target.

    Unset timeouts come from the provider (build_provider gives it the configured ones). ``daily_limit``
    (USD) is ``user``'s spending limit; none when unset. ``tools``: the runner of the MCP tools the model
    may call in this turn (one runner per turn)."""

    store: Store
    provider: Provider
    pricer: Pricer
    context_window: int | None = None
    user: str | None = None
    daily_limit: float | None = None
    idle_timeout: float | None = None
    first_output_timeout: float | None = None
    tools: ToolRunner | None = None
