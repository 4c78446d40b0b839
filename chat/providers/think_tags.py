"""``<think>…</think>`` at the start of a streamed answer, moved out of the text into the reasoning.

Models served without a reasoning parser (Qwen3, DeepSeek-R1 on a bare llama.cpp, vLLM or Ollama) write their
thinking into the content between these tags. The tags may arrive split across chunks ("<thi", "nk>"), so a
piece that could still be the start of a tag is held back until the next chunk settles it. Only a tag at the
very start of the answer (after whitespace) counts: a "<think>" later in an answer is text.
"""

from __future__ import annotations

from chat.providers.base import Reasoning

OPEN, CLOSE = "<think>", "</think>"


def _held_tail(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could be the start of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkTags:
    """Feed content chunks; get back text and :class:`Reasoning` pieces. ``flush()`` at the end of the stream."""

    def __init__(self) -> None:
        self._state = "start"  # start -> inside -> answer (leading whitespace dropped) -> text
        self._held = ""

    def feed(self, chunk: str) -> list[str]:
        if self._state == "text":
            return [chunk]
        out: list[str] = []
        self._held += chunk
        while self._held:
            if self._state == "start":
                head = self._held.lstrip()
                if not head or (len(head) < len(OPEN) and OPEN.startswith(head)):
                    return out  # still possibly a tag (or only whitespace): wait for more
                if head.startswith(OPEN):
                    self._held, self._state = head[len(OPEN):], "inside"
                    continue
                self._state = "text"
                out.append(self._held)
                self._held = ""
            elif self._state == "inside":
                end = self._held.find(CLOSE)
                if end >= 0:
                    if end:
                        out.append(Reasoning(self._held[:end]))
                    self._held, self._state = self._held[end + len(CLOSE):], "answer"
                    continue
                keep = _held_tail(self._held, CLOSE)
                if len(self._held) > keep:
                    out.append(Reasoning(self._held[: len(self._held) - keep]))
                    self._held = self._held[len(self._held) - keep:]
                return out
            elif self._state == "answer":
                head = self._held.lstrip()
                if not head:
                    self._held = ""
                    return out
                self._state = "text"
                out.append(head)
                self._held = ""
            else:
                out.append(self._held)
                self._held = ""
        return out

    def flush(self) -> list[str]:
        """What is still held when the stream ends: reasoning if a tag was open, else text."""
        held, self._held = self._held, ""
        if not held:
            return []
        if self._state == "inside":
            return [Reasoning(held)]
        if self._state == "answer":
            held = held.lstrip()
        return [held] if held else []
