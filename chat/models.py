"""Which models each endpoint serves, and what each can do.

Listing: an endpoint's own ``GET /v1/models`` (both SDKs' ``models.list()``), asked with a short timeout and no
retries so an offline page never hangs, kept for ``ttl`` seconds (a failure too, for a shorter while), and
refreshable. The picker shows the configured models first (pinned, in their order), then what the endpoint
serves besides, minus the hidden ones (``CHAT_HIDE_MODELS``: ``provider:pattern`` with shell wildcards); when the
listing fails, the configured list alone.

Capabilities, first known wins: the provider's own word (Anthropic's models API: ``capabilities.thinking``,
``capabilities.effort``, ``max_input_tokens``, ``max_tokens``), then configuration (``[capabilities."p:m"]`` /
``CHAT_CAPABILITIES``), then genai-prices' model data (context window), then what OpenAI's model names say (the
o-series and gpt-5 reason; gpt-4o and gpt-4.1 do not). Unknown (None) means: offer the setting, send it only
when chosen, and let the provider judge.
"""

from __future__ import annotations

import fnmatch
import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chat.config import Endpoint, ModelId, Settings

LIST_TIMEOUT = 3.0  # seconds a listing may take before the configured list is used instead
TTL = 600.0  # seconds a listing is kept
FAILED_TTL = 60.0  # seconds a failed listing is kept before it is asked again
OPENAI_EFFORTS = ("minimal", "low", "medium", "high")
ANTHROPIC_EFFORTS = ("low", "medium", "high", "xhigh", "max")
# OpenAI lists every model it serves, most of which cannot chat
_NOT_CHAT = ("embedding", "tts", "whisper", "dall-e", "moderation", "transcribe", "audio", "realtime", "image",
             "search", "davinci", "babbage", "computer-use", "sora")


@dataclass(frozen=True)
class Capabilities:
    reasoning_effort: bool | None = None  # takes an effort level
    efforts: tuple[str, ...] = ()  # the levels it takes (empty: the provider's usual set)
    thinking: bool | None = None  # Anthropic: thinking can be turned on and off
    thinking_mode: str | None = None  # "adaptive" or "enabled" (a budget) when thinking is on
    context_window: int | None = None
    max_output: int | None = None
    source: str = "unknown"  # where the reasoning figures came from: provider, configuration, names, unknown
    image_input: bool | None = None  # reads images (None: unknown, sent and the provider judges)
    pdf_input: bool | None = None  # reads PDFs as documents (compatible servers get their text instead)


@dataclass
class Listing:
    """What one endpoint said it serves (``models``), with the capabilities it reported, or why not (``error``)."""

    models: list[str] = field(default_factory=list)
    capabilities: dict[str, Capabilities] = field(default_factory=dict)
    error: str | None = None
    at: float = 0.0


def _supported(value: Any) -> bool | None:
    if value is None:
        return None
    flag = value.get("supported") if isinstance(value, dict) else getattr(value, "supported", None)
    return bool(flag) if flag is not None else None


def _anthropic_capabilities(info: Any) -> Capabilities:
    caps = getattr(info, "capabilities", None)
    thinking = getattr(caps, "thinking", None) if caps is not None else None
    effort = getattr(caps, "effort", None) if caps is not None else None
    levels = tuple(level for level in ANTHROPIC_EFFORTS if _supported(getattr(effort, level, None)))
    mode = None
    types = getattr(thinking, "types", None)
    if types is not None:
        mode = ("adaptive" if _supported(getattr(types, "adaptive", None))
                else "enabled" if _supported(getattr(types, "enabled", None)) else None)
    return Capabilities(reasoning_effort=_supported(effort), efforts=levels, thinking=_supported(thinking),
                        thinking_mode=mode, context_window=getattr(info, "max_input_tokens", None),
                        max_output=getattr(info, "max_tokens", None), source="provider" if caps else "unknown",
                        image_input=_supported(getattr(caps, "image_input", None)) if caps is not None else None,
                        pdf_input=_supported(getattr(caps, "pdf_input", None)) if caps is not None else None)


def discover(endpoint: Endpoint, client: Any, *, timeout: float = LIST_TIMEOUT) -> Listing:
    """Ask the endpoint what it serves. Never raises: a failure is the listing's ``error``."""
    if client is None:
        return Listing(error="no key configured", at=time.monotonic())
    try:
        page = client.with_options(timeout=timeout, max_retries=0).models.list()
        infos = list(page)
    except Exception as exc:  # offline, 401, 404 (a server without the route), a proxy page...
        return Listing(error=f"{type(exc).__name__}: {exc}"[:200], at=time.monotonic())
    listing = Listing(at=time.monotonic())
    for info in infos:
        model = getattr(info, "id", None)
        if not isinstance(model, str) or not model:
            continue
        if endpoint.name == "openai" and any(word in model for word in _NOT_CHAT):
            continue
        listing.models.append(model)
        if endpoint.kind == "anthropic":
            listing.capabilities[model] = _anthropic_capabilities(info)
    return listing


def _hidden(model_id: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(model_id, p) for p in patterns)


def picker_models(settings: Settings, listings: Mapping[str, Listing]) -> list[str]:
    """The picker's list: per configured endpoint, its configured models (pinned, in order), then the ones
    it serves besides (sorted), without the hidden ones. ``CHAT_DEFAULT_MODEL`` is always in it."""
    out: list[str] = []
    for endpoint in settings.configured:
        pinned = endpoint.model_ids()
        listing = listings.get(endpoint.name)
        served = [f"{endpoint.name}:{m}" for m in sorted(listing.models)] if listing and not listing.error else []
        for model_id in pinned + served:
            if model_id not in out and not _hidden(model_id, settings.hidden_models):
                out.append(model_id)
    default = settings.initial_model()
    if default and default not in out:
        out.insert(0, default)
    return out


@functools.lru_cache(maxsize=256)
def listed_context_window(provider: str, model: str) -> int | None:
    import genai_prices

    try:
        calc = genai_prices.calc_price(genai_prices.Usage(input_tokens=0, output_tokens=0), model,
                                       provider_id=provider)
    except LookupError:
        return None
    return calc.model.context_window


def openai_reasons(model: str) -> bool | None:
    """What OpenAI's model names say: the o-series and gpt-5 reason (not gpt-5's chat variants); gpt-4o,
    gpt-4.1 and gpt-3.5 do not; anything else is unknown."""
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith(("gpt-4", "gpt-3.5", "chatgpt-")) or "-chat" in name:
        return False
    if name.startswith(("o1", "o3", "o4", "gpt-5", "codex")):
        return True
    return None


def openai_reads_files(model: str) -> bool | None:
    """What OpenAI's model names say about images and PDFs: gpt-4o, gpt-4.1, gpt-5 and the o-series (not
    o1-mini / o3-mini) read both; gpt-3.5 and gpt-4 before 4o neither; anything else is unknown."""
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith(("gpt-3.5", "o1-mini", "o3-mini")) or name in ("gpt-4", "gpt-4-0613", "gpt-4-32k"):
        return False
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return True
    return None


def capabilities(settings: Settings, provider: str, model: str,
                 listing: Listing | None = None, *, window: bool = True) -> Capabilities:
    """What ``provider:model`` can do, first known wins (see the module docstring). ``window=False``: without
    genai-prices' context window (its data takes most of a second to load, which a page drawing its settings
    should not wait for; a turn asks with it)."""
    endpoint = settings.endpoint(provider)
    found = (listing.capabilities.get(model) if listing is not None else None) or Capabilities()
    configured = settings.capabilities.get(f"{provider}:{model}") or {}
    if configured:
        found = replace(found, **{k: v for k, v in configured.items()
                                  if getattr(found, k) in (None, ())},
                        source=found.source if found.source != "unknown" else "configuration")
    if found.context_window is None and endpoint is not None:
        listed = window and provider in ("openai", "anthropic")
        found = replace(found, context_window=endpoint.context_window or (
            listed_context_window(provider, model) if listed else None))
    if provider == "openai" and found.reasoning_effort is None:
        reasons = openai_reasons(model)
        if reasons is not None:
            found = replace(found, reasoning_effort=reasons, source="names")
    if provider == "openai" and found.image_input is None:
        reads = openai_reads_files(model)
        if reads is not None:
            found = replace(found, image_input=reads, pdf_input=reads if found.pdf_input is None else found.pdf_input)
    if endpoint is not None and endpoint.kind == "openai" and provider != "openai":
        found = replace(found, thinking=False)  # no thinking switch over Chat Completions
        if found.pdf_input is None:
            found = replace(found, pdf_input=True)  # sent as its text: every server reads that
    if endpoint is not None and endpoint.kind == "openai" and found.reasoning_effort is None and provider != "openai":
        found = replace(found, reasoning_effort=False)  # compatible servers: not offered, reasoning still shown
    if not found.efforts:
        openai_format = provider == "openai" or (endpoint is not None and endpoint.kind == "openai")
        found = replace(found, efforts=OPENAI_EFFORTS if openai_format else ANTHROPIC_EFFORTS[:3] + ("max",))
    return found


class Catalog:
    """Listings per endpoint, asked lazily and kept for a while; thread-safe (shared by every session).
    ``clients`` returns the providers by endpoint name (each with its SDK ``client``, None when no key is set).

    With ``wait`` (seconds) a listing not yet known is asked on a thread of its own and waited for until ``wait``
    after its request went out, however often it is looked up (the endpoints are asked together); never while
    ``clients`` is still building the clients (a cold server importing the SDKs): a page run meanwhile uses the
    configured list, and a later run has the listing. ``wait=None`` asks and waits (tests, scripts)."""

    def __init__(self, settings: Settings, clients: Callable[[], Mapping[str, Any]], *, ttl: float = TTL,
                 failed_ttl: float = FAILED_TTL, timeout: float = LIST_TIMEOUT, wait: float | None = None):
        self.settings = settings
        self._clients = clients
        self._ttl, self._failed_ttl, self._timeout, self._wait = ttl, failed_ttl, timeout, wait
        self._listings: dict[str, Listing] = {}
        self._asking: dict[str, threading.Thread] = {}
        self._asked_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def _ask(self, name: str, endpoint: Endpoint) -> None:
        try:
            clients = self._clients()
            with self._lock:
                self._asked_at[name] = time.monotonic()  # the request goes out: page runs may wait for it now
            client = getattr(clients.get(name), "client", None)
            fresh = discover(endpoint, client, timeout=self._timeout)
        except Exception as exc:  # building the clients failed: the configured list stands
            fresh = Listing(error=f"{type(exc).__name__}: {exc}"[:200], at=time.monotonic())
        with self._lock:
            self._listings[name] = fresh
            self._asking.pop(name, None)

    def _start(self, name: str) -> Listing | threading.Thread | None:
        """The kept listing of ``name`` while it is fresh, else the thread asking for it (started if none is)."""
        endpoint = self.settings.endpoint(name)
        if endpoint is None or not endpoint.configured:
            return None
        with self._lock:
            kept = self._listings.get(name)
            now = time.monotonic()
            if kept is not None and now - kept.at < (self._failed_ttl if kept.error else self._ttl):
                return kept
            asking = self._asking.get(name)
            if asking is None:
                asking = self._asking[name] = threading.Thread(target=self._ask, args=(name, endpoint),
                                                               name=f"models-{name}", daemon=True)
                self._asked_at[name] = 0.0  # not asked yet: no page run waits while the clients are built
                asking.start()
            return asking

    def listing(self, name: str) -> Listing | None:
        started = self._start(name)
        if not isinstance(started, threading.Thread):
            return started
        if self._wait is None:
            started.join()
        else:
            with self._lock:
                deadline = self._asked_at.get(name, 0.0) + self._wait
            started.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return self._listings.get(name)

    def wait(self) -> None:
        """Wait for every listing being asked (tests)."""
        for endpoint in self.settings.configured:
            self.listing(endpoint.name)
            with self._lock:
                asking = self._asking.get(endpoint.name)
            if asking is not None:
                asking.join()

    def listings(self) -> dict[str, Listing]:
        for endpoint in self.settings.configured:
            self._start(endpoint.name)  # every endpoint asked at once: their waits overlap
        out = {}
        for endpoint in self.settings.configured:
            listing = self.listing(endpoint.name)
            if listing is not None:
                out[endpoint.name] = listing
        return out

    def models(self) -> list[str]:
        return picker_models(self.settings, self.listings())

    def capabilities(self, provider: str, model: str, *, window: bool = True) -> Capabilities:
        return capabilities(self.settings, provider, model, self.listing(provider), window=window)

    def capabilities_of(self, model_id: ModelId) -> Capabilities:
        """What ``model_id`` can do, its context window included (what a turn asks)."""
        return self.capabilities(model_id.provider, model_id.model)

    def refresh(self) -> None:
        with self._lock:
            self._listings.clear()

    def failures(self) -> dict[str, str]:
        with self._lock:
            return {name: listing.error for name, listing in self._listings.items() if listing.error}
