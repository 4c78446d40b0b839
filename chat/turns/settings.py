"""What a turn runs with: :class:`TurnSettings` (what produces the reply: model, system prompt, parameters,
tools) and :class:`TurnContext` (where it is stored, who answers, what it costs, its limits);
:class:`TurnContexts` gives the context of a turn on any model, and :func:`settings_to_restore` a conversation's
saved settings as the values a page sets its controls to."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from chat import attachments
from chat.config import ModelId, Settings, parse_model_id
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
    costs, and its limits: :meth:`TurnContexts.for_model` gives one per turn (a chat's, each compare column's).

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


@dataclass(frozen=True)
class TurnContexts:
    """What every turn a page starts runs with, whatever its model: the store, each endpoint's provider, the
    pricer, who asks and their limits. :meth:`for_model` gives one turn's :class:`TurnContext`, so a chat turn,
    each column of a comparison and each call of a batch run with the same limits (the daily one, the time
    between chunks, the attachments' sizes).

    ``capabilities(model_id)`` says what a model can do (its ``context_window``, ``image_input``,
    ``pdf_input``); without it nothing is assumed."""

    store: Store
    providers: Mapping[str, Provider]
    pricer: Pricer
    user: str | None = None
    daily_limit: float | None = None
    idle_timeout: float | None = None
    file_limits: attachments.Limits = attachments.Limits()
    capabilities: Callable[[ModelId], Any] | None = None

    @classmethod
    def configured(cls, settings: Settings, store: Store, providers: Mapping[str, Provider], pricer: Pricer, *,
                   user: str | None, capabilities: Callable[[ModelId], Any] | None = None) -> TurnContexts:
        """With the limits the settings give: ``user``'s daily limit, the time between chunks (CHAT_TIMEOUT),
        the attachments' sizes."""
        return cls(store, providers, pricer, user=user, daily_limit=settings.daily_limit_usd,
                   idle_timeout=settings.timeout,
                   file_limits=attachments.Limits.in_megabytes(settings.attach_max_file_mb,
                                                               settings.attach_max_message_mb),
                   capabilities=capabilities)

    def capabilities_of(self, model_id: ModelId) -> Any:
        """What ``model_id`` can do, or None when unknown."""
        return self.capabilities(model_id) if self.capabilities is not None else None

    def for_model(self, model_id: ModelId, *, tools: ToolRunner | None = None) -> TurnContext:
        """A turn's context on ``model_id`` (its provider built now, on first use), with ``tools`` when the
        model may call any."""
        return TurnContext(self.store, self.providers[model_id.provider], self.pricer,
                           context_window=getattr(self.capabilities_of(model_id), "context_window", None),
                           user=self.user, daily_limit=self.daily_limit, idle_timeout=self.idle_timeout,
                           tools=tools)


def settings_to_restore(used: Mapping, settings: Settings, *, served: Collection[str],
                        model_default: str) -> dict[str, Any]:
    """The values a chat's setting controls take when a conversation is opened, from the settings it was last
    used with (``used``): its model when still ``served`` (else the configured first choice), system prompt,
    parameters (None: the control is left empty, the model's default), reasoning effort and thinking
    (``model_default`` when it chose none) and the tool servers still configured (none unless it chose some)."""
    model_id = f"{used['provider']}:{used['model']}" if used.get("provider") else None
    return {"model": model_id if model_id in served else settings.initial_model(),
            "system": used.get("system", ""), "temperature": used.get("temperature"),
            "max_tokens": used.get("max_tokens"),
            "reasoning_effort": used.get("reasoning_effort") or model_default,
            "thinking": used.get("thinking") or model_default,
            "tools": [n for n in used.get("tools") or [] if settings.mcp_server(n) is not None]}
