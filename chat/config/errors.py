"""The errors a setting can raise. Configuration fails closed: a malformed setting stops the app with one of
these, naming the setting and how to fix it, rather than starting with weaker settings than were written."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is malformed; the message says which one and how to fix it."""


class PriceConfigError(ConfigError):
    """A price override ([prices] / CHAT_PRICES) is malformed."""
