"""A reply's token counts, as providers report them and the store keeps them (a leaf module: pricing, the
providers and the words about a reply all read it)."""

from __future__ import annotations

from dataclasses import dataclass

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")  # summed: all tokens


@dataclass
class Usage:
    """Token counts for one reply. ``input_tokens`` excludes cache reads/writes (Anthropic's convention);
    ``*_exact`` say whether the provider reported the figure (True) or it was estimated locally (False)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    input_exact: bool = False
    output_exact: bool = False
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, written with a 1-hour lifetime (a higher rate)
    provider_cost: float | None = None  # USD, when the server reports what it billed (OpenRouter)
    reasoning_tokens: int | None = None  # of output_tokens, spent reasoning (provider-reported, else None)

    @property
    def exact(self) -> bool:
        return self.input_exact and self.output_exact

    @property
    def total_tokens(self) -> int:
        return sum(getattr(self, column) or 0 for column in TOKEN_COLUMNS)
