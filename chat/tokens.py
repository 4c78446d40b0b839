"""Token counting and estimating that never touches the network.

tiktoken ships no encodings: ``tiktoken.get_encoding("o200k_base")`` downloads the file on first use with
``requests.get(url)`` and no timeout. We never let it. The ``bpe-openai`` wheel bundles the very same files
(``bpe_openai/data/{o200k_base,cl100k_base}.tiktoken.gz``); we read them, check their sha256 against the
hashes tiktoken itself expects, and build the :class:`tiktoken.Encoding` ourselves.

Why build the ``Encoding`` ourselves rather than pre-fill tiktoken's download cache (a file named after the
sha1 of the URL in ``TIKTOKEN_CACHE_DIR``, else ``$TMPDIR/data-gym-cache``) and call ``get_encoding``:

- the cache is only consulted, never trusted: the directory is chosen from the environment *at call time*
  (``TIKTOKEN_CACHE_DIR=""`` disables it), the default one lives in a shared temp dir that tmp cleaners and
  other users can empty, and any miss or hash mismatch there goes straight to ``requests.get`` with no
  timeout. Making that safe would mean setting ``TIKTOKEN_CACHE_DIR`` for the whole process, which changes
  behaviour for every other library in it;
- ``tiktoken.load.load_tiktoken_bpe(path, hash)`` also goes through that cache (it copies the file into it)
  and wants an uncompressed file on disk;
- building it ourselves has no code path that can reach the network at all. The price is that the split
  pattern and special tokens below are copied from ``tiktoken_ext/openai_public.py`` (tiktoken 0.14.0, pinned);
  ``tests/test_tokens.py`` checks that they, and the ranks, still equal tiktoken's own definitions.

When an encoding cannot be loaded (file missing, corrupt, hash mismatch) every count falls back to a rough
estimate of one token per 4 bytes of UTF-8 and says so: :attr:`Count.method` is ``"rough"``.

There is no offline tokenizer for Claude, Llama, Qwen...: their counts use ``o200k_base`` as the best available
approximation (the method still says ``o200k_base``: it names the tokenizer used, not a promise of exactness).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import logging
import math
import re
import threading
import zlib
from binascii import a2b_base64
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import tiktoken

from chat import attachments
from chat.providers.base import Message, Usage

log = logging.getLogger(__name__)

O200K_BASE = "o200k_base"
CL100K_BASE = "cl100k_base"
ROUGH = "rough"

# OpenAI cookbook ("How to count tokens with tiktoken"), for every current chat model.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

ROUGH_BYTES_PER_TOKEN = 4

# Texts longer than this are counted in pieces cut where tiktoken's own split pattern always has a piece
# boundary (see _cut_points), so the count is unchanged. Without it, tiktoken's regex fails outright on a very
# long run of whitespace ("Max stack size exceeded for backtracking") and is slow on a very long word.
CHUNK_CHARS = 64 * 1024
MAX_REMEMBERED = 200_000  # token counts of texts remembered (a few MB)


@dataclass(frozen=True)
class _Spec:
    sha256: str  # of the decompressed .tiktoken file, as tiktoken_ext.openai_public expects
    pat_str: str
    special_tokens: tuple[tuple[str, int], ...]


# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14.0); a test compares them with tiktoken's own.
_SPECS: dict[str, _Spec] = {
    O200K_BASE: _Spec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens=(("<|endoftext|>", 199999), ("<|endofprompt|>", 200018)),
    ),
    CL100K_BASE: _Spec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
            r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens=(
            ("<|endoftext|>", 100257),
            ("<|fim_prefix|>", 100258),
            ("<|fim_middle|>", 100259),
            ("<|fim_suffix|>", 100260),
            ("<|endofprompt|>", 100276),
        ),
    ),
}

ENCODING_NAMES: tuple[str, ...] = tuple(_SPECS)


@dataclass(frozen=True)
class Count:
    """A token count and how it was obtained: an encoding name (``"o200k_base"``...) or ``"rough"``."""

    tokens: int
    method: str

    @property
    def rough(self) -> bool:
        return self.method == ROUGH


class EncodingUnavailable(Exception):
    """The bundled encoding file is missing, unreadable or does not match tiktoken's hash."""


# ---------------------------------------------------------------- model -> encoding

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "gpt-oss", "o1", "o3", "o4")
_CL100K_PREFIXES = (
    "gpt-4",  # after the o200k ones: gpt-4, gpt-4-turbo, gpt-4-0613...
    "gpt-3.5",
    "gpt-35",  # Azure deployment names
    "text-embedding-3",
    "text-embedding-ada-002",
    "davinci-002",
    "babbage-002",
)
_PROVIDER_PREFIXES = ("openai:", "azure:", "anthropic:")


def encoding_name_for(model: str) -> str:
    """The encoding to count ``model``'s tokens with.

    gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1/o3/o4*, chatgpt-4o*, gpt-oss* -> ``o200k_base``; gpt-4, gpt-4-turbo,
    gpt-3.5-turbo, text-embedding-3/ada-002 -> ``cl100k_base``; anything else (Claude, Llama, Qwen...) ->
    ``o200k_base`` as the best available approximation. Tolerates ``openai/gpt-4`` (router style),
    ``openai:gpt-4`` and fine-tune ids (``ft:gpt-3.5-turbo:org::id``).
    """
    name = (model or "").strip().lower().rsplit("/", 1)[-1]
    for prefix in ("ft:", *_PROVIDER_PREFIXES):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith(_O200K_PREFIXES):
        return O200K_BASE
    if name.startswith(_CL100K_PREFIXES):
        return CL100K_BASE
    return O200K_BASE


# ---------------------------------------------------------------- loading encodings


def bundled_data_dir() -> Path | None:
    """Where the ``bpe-openai`` wheel keeps its ``.tiktoken.gz`` files, found without importing the package
    (importing it loads a large native library that counting does not use). None when the wheel is not installed."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_ranks(name: str, data_dir: Path | None = None) -> dict[bytes, int]:
    """The mergeable ranks of encoding ``name`` from ``data_dir/<name>.tiktoken.gz`` (default: the bundled
    copy), verified against tiktoken's sha256. Raises :class:`EncodingUnavailable`."""
    spec = _SPECS.get(name)
    if spec is None:
        raise EncodingUnavailable(f"no bundled encoding named {name!r}")
    data_dir = data_dir if data_dir is not None else bundled_data_dir()
    if data_dir is None:
        raise EncodingUnavailable("the bpe-openai package (which bundles the encodings) is not installed")
    path = Path(data_dir) / f"{name}.tiktoken.gz"
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:  # OSError includes gzip.BadGzipFile
        raise EncodingUnavailable(f"cannot read {path}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise EncodingUnavailable(f"{path} has sha256 {actual}, tiktoken expects {spec.sha256}")
    # Same format as tiktoken.load.load_tiktoken_bpe: "<base64 token> <rank>" per line.
    fields = data.split()
    if len(fields) % 2:
        raise EncodingUnavailable(f"{path} is not a .tiktoken file")
    return dict(zip(map(a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


def load_encoding(name: str, data_dir: Path | None = None) -> tiktoken.Encoding:
    """Build the ``tiktoken.Encoding`` ``name`` from local data only (no cache dir, no network).
    Raises :class:`EncodingUnavailable`."""
    ranks = read_ranks(name, data_dir)
    spec = _SPECS[name]
    try:
        return tiktoken.Encoding(
            name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=dict(spec.special_tokens)
        )
    except Exception as exc:  # tiktoken's own validation (e.g. rank collisions)
        raise EncodingUnavailable(f"tiktoken rejected {name}: {exc}") from exc


# ---------------------------------------------------------------- counting


def rough_tokens(text: str) -> int:
    """One token per 4 bytes of UTF-8, rounded up: ~4 characters per token for English, and not wildly low
    for scripts that tokenize densely (CJK is 3 bytes a character)."""
    if not text:
        return 0
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / ROUGH_BYTES_PER_TOKEN)


def _cut_points(text: str, size: int) -> Iterator[int]:
    """Ends of consecutive pieces of ``text`` of at most ``size`` characters.

    A piece ends, where possible, just before a space that follows a non-space: in both encodings' split
    patterns no pre-token can contain a non-space followed by a space (words take a *leading* space,
    whitespace runs start with whitespace), so every pre-token is the same in the pieces as in the whole
    text and the count does not change. Failing that, after a newline followed by a non-space other than
    "/"; failing that (one giant word or whitespace run), anywhere: each such cut may be off by a token.
    """
    start, n = 0, len(text)
    while n - start > size:
        hi, lo = start + size, start + size // 2
        cut = _safe_cut(text, lo, hi)
        yield cut
        start = cut
    yield n


# The last position in text[lo:hi] (searched backwards by the regex engine, not a Python loop) just before a
# space that follows a non-space; failing that, just after a newline followed by a non-space other than "/".
_LAST_SPACE_CUT = re.compile(r"(?s:.*)\S(?= )")
_LAST_NEWLINE_CUT = re.compile(r"(?s:.*)\n(?=[^\s/])")


def _safe_cut(text: str, lo: int, hi: int) -> int:
    for pattern in (_LAST_SPACE_CUT, _LAST_NEWLINE_CUT):
        if m := pattern.match(text, lo, hi):
            return m.end()
    return hi


class Tokenizer:
    """Counts tokens with encodings loaded lazily, once, from ``data_dir`` (default: the ``bpe-openai``
    wheel). Thread-safe: each encoding is loaded under its own lock, so a count with one encoding never
    waits for another to load. A failed load is remembered (logged once) and counts fall back to rough.

    The module-level functions use one shared instance; tests build their own with an injected ``data_dir``.
    """

    def __init__(self, data_dir: Path | None = None, *, chunk_chars: int = CHUNK_CHARS):
        self.data_dir = data_dir
        self.chunk_chars = chunk_chars
        self._encodings: dict[str, tiktoken.Encoding | None] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._lengths: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._lengths_lock = threading.Lock()

    # -- encodings
    def encoding(self, name: str) -> tiktoken.Encoding | None:
        """The encoding ``name``, loading it on first use; None when it cannot be loaded."""
        try:
            return self._encodings[name]
        except KeyError:
            pass
        with self._locks_lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._encodings:
                try:
                    self._encodings[name] = load_encoding(name, self.data_dir)
                except EncodingUnavailable as exc:
                    log.warning("Token counts fall back to a rough estimate: %s", exc)
                    self._encodings[name] = None
            return self._encodings[name]

    def warm_up(self, names: Iterable[str] = (O200K_BASE,)) -> None:
        for name in names:
            self.encoding(name)

    # -- counting
    def count_text(self, text: str, model: str) -> Count:
        return self._count(text, encoding_name_for(model))

    def _count(self, text: str, encoding_name: str) -> Count:
        enc = self.encoding(encoding_name)
        if enc is None:
            return Count(rough_tokens(text), ROUGH)
        if not text:
            return Count(0, encoding_name)
        try:
            return Count(self._encoded_length(enc, text), encoding_name)
        except ValueError as exc:  # tiktoken's regex engine giving up; never seen after chunking
            log.warning("tiktoken failed on a %d-character text (%s); counting roughly", len(text), exc)
            return Count(rough_tokens(text), ROUGH)

    def _encoded_length(self, enc: tiktoken.Encoding, text: str) -> int:
        # A conversation's messages are counted again at every send (context trimming, the estimate): the
        # lengths are remembered by (encoding, length, hash) of the text, a few hundred thousand at most.
        key = (enc.name, len(text), hash(text))
        with self._lengths_lock:
            known = self._lengths.get(key)
            if known is not None:
                self._lengths.move_to_end(key)
                return known
        # Special tokens in user text ("<|endoftext|>") are counted as the plain text they are.
        total, start = 0, 0
        for end in _cut_points(text, self.chunk_chars):
            total += len(enc.encode(text[start:end], allowed_special=set(), disallowed_special=()))
            start = end
        with self._lengths_lock:
            self._lengths[key] = total
            if len(self._lengths) > MAX_REMEMBERED:
                self._lengths.popitem(last=False)
        return total

    def estimate_input(self, messages: Sequence[Message], model: str, system: str | None = None) -> Count:
        """Prompt tokens the OpenAI way (cookbook): 3 per message, +1 when it has a ``name``, +3 to prime
        the reply; the role, name and content are counted as text; ``system`` (when non-empty) is one more
        message. For non-OpenAI models this is an approximation."""
        encoding_name = encoding_name_for(model)
        method = encoding_name if self.encoding(encoding_name) is not None else ROUGH
        total = REPLY_PRIMING
        turns: list[tuple[str, str, str | None]] = [("system", system, None)] if system else []
        turns += [(m.role, m.content, getattr(m, "name", None)) for m in messages]
        for message in messages:  # attached files: images, PDF pages and text files at the documented rates
            for item in getattr(message, "attachments", ()):
                total += attachments.estimate_tokens(item, model, lambda text: self._count(text, encoding_name).tokens)
        for role, content, name in turns:
            total += TOKENS_PER_MESSAGE
            for text in (role, content, name):
                if text:
                    count = self._count(text, encoding_name)
                    total += count.tokens
                    if count.rough:
                        method = ROUGH
            if name:
                total += TOKENS_PER_NAME
        return Count(total, method)

    def estimate_output(self, text: str, model: str) -> Count:
        """Tokens of a reply's text (e.g. a stopped reply whose usage never arrived)."""
        return self.count_text(text, model)

    def fill_missing_usage(self, usage: Usage, *, messages: Sequence[Message], system: str | None,
                           reply_text: str, model: str) -> Usage:
        """A copy of ``usage`` where a missing (None) input or output figure is estimated locally and
        flagged not exact. Figures the provider reported, and their flags, are kept as they are.

        The input estimate covers the whole prompt, so cache tokens the provider did report are taken off
        it (``Usage.input_tokens`` excludes them)."""
        changes: dict[str, object] = {}
        if usage.input_tokens is None:
            prompt = self.estimate_input(messages, model, system).tokens
            cached = usage.cache_read_tokens + usage.cache_write_tokens
            changes.update(input_tokens=max(0, prompt - cached), input_exact=False)
        if usage.output_tokens is None:
            changes.update(output_tokens=self.estimate_output(reply_text, model).tokens, output_exact=False)
        return dataclasses.replace(usage, **changes)


_default = Tokenizer()


def count_text(text: str, model: str) -> Count:
    """Tokens in ``text`` for ``model`` (see :func:`encoding_name_for`)."""
    return _default.count_text(text, model)


def estimate_input(messages: list[Message], model: str, system: str | None = None) -> Count:
    """Prompt tokens of a chat request; see :meth:`Tokenizer.estimate_input`."""
    return _default.estimate_input(messages, model, system)


def estimate_output(text: str, model: str) -> Count:
    """Tokens of a reply's text."""
    return _default.estimate_output(text, model)


def fill_missing_usage(usage: Usage, *, messages: list[Message], system: str | None, reply_text: str,
                       model: str) -> Usage:
    """``usage`` with any None input/output estimated (flagged not exact); see
    :meth:`Tokenizer.fill_missing_usage`."""
    return _default.fill_missing_usage(usage, messages=messages, system=system, reply_text=reply_text,
                                       model=model)


def warm_up(names: Iterable[str] = (O200K_BASE,)) -> None:
    """Load encodings now rather than on the first count (a load takes a noticeable fraction of a second).
    Blocks; the app calls it once at start on a background thread. Safe to call concurrently with counts,
    which wait for the load rather than load a second copy."""
    _default.warm_up(names)
