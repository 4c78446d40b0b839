"""What a provider's HTTP error answer means: its typed error (by status, and by its words for a context too
long), how long its ``retry-after`` asks to wait, and its text with API keys redacted."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

from chat.providers.base import (
    AuthenticationFailed,
    ContextTooLong,
    GatewayError,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
)

# things that look like API keys: sk-..., sk-ant-..., and long opaque tokens after "key"
_KEYISH = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}|(?<=key provided: )\S+", re.IGNORECASE)

_CONTEXT_PHRASES = ("context_length_exceeded", "maximum context length", "prompt is too long",
                    "context window", "too many tokens", "input is too long", "exceeds the context")


GATEWAY_STATUSES = frozenset({502, 504, 520, 521, 522, 523, 524})  # nginx, load balancers, Cloudflare


def redact(text: str, *secrets: str | None) -> str:
    """``text`` without the given secrets or anything shaped like an API key."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _KEYISH.sub("[redacted]", text)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), else None."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def looks_like_context_too_long(*texts: str | None) -> bool:
    joined = " ".join(t for t in texts if t).lower()
    return any(phrase in joined for phrase in _CONTEXT_PHRASES)


def error_for_status(status: int, detail: str, *, provider: str, retry_after: float | None = None,
                     context_too_long: bool = False) -> ProviderError:
    """The typed error of an HTTP error status received before the stream started."""
    if status == 401:
        cls: type[ProviderError] = AuthenticationFailed
    elif status == 403:
        cls = PermissionDenied
    elif status == 404:
        cls = ModelNotFound
    elif status == 429:
        cls = RateLimited
    elif status in (503, 529):
        cls = Overloaded
    elif status in GATEWAY_STATUSES:
        cls = GatewayError
    elif status == 413 or (status == 400 and context_too_long):
        cls = ContextTooLong
    else:
        cls = ProviderError
    if "<html" in detail.lower():  # a gateway's error page: its markup says nothing more than the status
        detail = f"HTTP {status} (an HTML error page)"
    return cls(detail, provider=provider, status=status,
               retry_after=retry_after if cls in (RateLimited, Overloaded) else None)
