"""Files attached to a message: images, PDFs and text files. Read, checked, stored, sent, counted.

- :func:`read` turns (name, bytes) into an :class:`Attachment` or raises an :class:`AttachmentError` saying
  what is wrong in one sentence: empty, unreadable, a type we do not take (SVG is refused as an image), or
  not what its name says. The kind comes from the content (magic bytes), never from the extension alone.
- :func:`check` holds a message's files against the limits (per file, per message, how many) and against
  what the chosen model reads, before anything is saved or sent.
- Providers read them differently (see :func:`for_wire`): images go as images (downscaled to what the
  provider accepts, re-encoded without EXIF/GPS metadata, the original kept in the store), PDFs as
  documents to OpenAI's Responses API and Anthropic, as their extracted text to OpenAI-compatible servers,
  and text files as fenced blocks with their name, for every provider.
- :func:`estimate_tokens` is the ≈ input of an attachment when the provider reported no usage: OpenAI's
  image-tile formula, Anthropic's width×height/750, PDF pages at the documented rates.

A PDF is only read for its text and page count (pypdf); nothing a file contains is fetched, run or rendered
as HTML. Never imports streamlit.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WebP"}
PDF = "application/pdf"
TEXT = "text/plain"
IMAGE_EXTENSIONS = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
                    "webp": "image/webp"}
TEXT_EXTENSIONS = ("txt", "md", "markdown", "csv", "tsv", "json", "jsonl", "yaml", "yml", "toml", "ini", "cfg",
                   "log", "xml", "py", "js", "ts", "tsx", "jsx", "java", "kt", "go", "rs", "c", "h", "cpp", "hpp",
                   "cc", "cs", "rb", "php", "swift", "scala", "sh", "bash", "zsh", "sql", "r", "lua", "pl",
                   "css", "scss", "html", "htm", "diff", "patch", "env", "rst", "tex", "proto", "graphql")
FILE_TYPES = [*IMAGE_EXTENSIONS, "pdf", *TEXT_EXTENSIONS]  # what the chat input offers (st.chat_input file_type)
REFUSED = ("svg", "svgz")  # an SVG is a program as much as a picture: not taken as an image

# Defaults that fit the providers' own limits: Anthropic takes 32 MB per request and 5 MB per image (images
# are downscaled here first), OpenAI 50 MB per request; each provider takes at most 100 images per request.
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_MESSAGE_BYTES = 30 * 1024 * 1024
MAX_FILES = 20
MAX_TEXT_CHARS = 400_000  # a text file past this is too long to send whole

# What a provider accepts, per image: the longest side (larger ones are downscaled, keeping proportions)
# and the bytes after encoding (above that, the image is re-encoded as JPEG, then made smaller).
IMAGE_MAX_SIDE = {"responses": 2048, "anthropic": 1568, "chat": 2048}
IMAGE_MAX_BYTES = {"responses": 20 * 1024 * 1024, "anthropic": 5 * 1024 * 1024, "chat": 20 * 1024 * 1024}
# Documented input per PDF page: Anthropic 1,500–3,000 text tokens plus the page as an image; OpenAI sends
# each page's text and an image of it. Mid-range figures, marked ≈ wherever they are shown.
PDF_PAGE_TOKENS = {"anthropic": 2_250, "openai": 1_000}


class AttachmentError(ValueError):
    """A file that cannot be sent as it is. ``hint`` is the sentence the page shows."""

    def __init__(self, hint: str, *, name: str = ""):
        super().__init__(hint)
        self.hint = hint
        self.name = name


class ModelCannotRead(AttachmentError):
    """The chosen model does not read this kind of file."""


class TooLarge(AttachmentError):
    """A file, or a message's files together, over the configured limit."""


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = MAX_FILE_BYTES
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_files: int = MAX_FILES

    @classmethod
    def in_megabytes(cls, per_file: float, per_message: float) -> Limits:
        """The limits as settings write them (``CHAT_ATTACH_MAX_FILE_MB``, ``CHAT_ATTACH_MAX_MESSAGE_MB``)."""
        return cls(max_file_bytes=int(per_file * 1024 * 1024), max_message_bytes=int(per_message * 1024 * 1024))


@dataclass(frozen=True)
class Attachment:
    """One file. ``data`` may be None for a stored attachment not loaded yet (see ``Store.blob``)."""

    name: str
    media_type: str
    size: int
    sha256: str
    data: bytes | None = field(default=None, repr=False, compare=False)
    width: int | None = None
    height: int | None = None
    pages: int | None = None

    @property
    def kind(self) -> str:
        """"image", "pdf" or "text"."""
        if self.media_type in IMAGE_TYPES:
            return "image"
        return "pdf" if self.media_type == PDF else "text"

    def meta(self) -> dict:
        """What is stored beside the blob (and exported)."""
        return {"name": self.name, "media_type": self.media_type, "size": self.size, "sha256": self.sha256,
                "width": self.width, "height": self.height, "pages": self.pages}

    @classmethod
    def from_meta(cls, meta: dict, data: bytes | None = None) -> Attachment:
        return cls(name=meta["name"], media_type=meta["media_type"], size=meta["size"], sha256=meta["sha256"],
                   data=data, width=meta.get("width"), height=meta.get("height"), pages=meta.get("pages"))


# ---------------------------------------------------------------- reading a file


def sniff(data: bytes) -> str | None:
    """The media type the content says (magic bytes), for the kinds taken; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:5] == b"%PDF-" or b"%PDF-" in data[:1024]:
        return PDF
    return None


_DESCRIBED = {"image/png": "a PNG image", "image/jpeg": "a JPEG image", "image/gif": "a GIF image",
              "image/webp": "a WebP image", PDF: "a PDF", TEXT: "a text file"}


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def _decode_text(data: bytes) -> str | None:
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def read(name: str, data: bytes) -> Attachment:
    """An :class:`Attachment` of a file the user gave, or the :class:`AttachmentError` that says why not."""
    name = (name or "file").replace("\x00", "").strip() or "file"
    ext = _extension(name)
    if not data:
        raise AttachmentError(f"{name} is empty.", name=name)
    if ext in REFUSED or data.lstrip()[:5].lower() in (b"<svg ", b"<svg>") or (
            data.lstrip()[:5] == b"<?xml" and b"<svg" in data[:2048].lower()):
        raise AttachmentError(f"{name} is an SVG drawing, which is not taken as an image; attach a PNG or JPEG "
                              "of it instead.", name=name)
    sniffed = sniff(data)
    expected = IMAGE_EXTENSIONS.get(ext) or (PDF if ext == "pdf" else TEXT if ext in TEXT_EXTENSIONS else None)
    if expected is None and sniffed is None and ext:
        raise AttachmentError(f"{name}: .{ext} files are not taken. Attach images (PNG, JPEG, GIF, WebP), PDFs "
                              "or text files.", name=name)
    if expected is not None and sniffed != expected and not (expected == TEXT and sniffed is None):
        # images of one kind named as another (a .jpg that is a PNG) are what they are; anything else is not
        if not (expected in IMAGE_TYPES and sniffed in IMAGE_TYPES):
            what = _DESCRIBED.get(sniffed or "", "not readable as text" if expected == TEXT else "something else")
            said = _DESCRIBED[expected]
            raise AttachmentError(f"{name} is named as {said} but its content is "
                                  f"{what if what.startswith('not') else what}.", name=name)
    media_type = sniffed or TEXT
    digest = hashlib.sha256(data).hexdigest()
    if media_type in IMAGE_TYPES:
        width, height = _image_size(name, data)
        return Attachment(name, media_type, len(data), digest, data, width=width, height=height)
    if media_type == PDF:
        return Attachment(name, PDF, len(data), digest, data, pages=_pdf_pages(name, data))
    text = _decode_text(data)
    if text is None:
        raise AttachmentError(f"{name} is not a text file this chat can read (it is binary, or not UTF-8).",
                              name=name)
    if not text.strip():
        raise AttachmentError(f"{name} is empty.", name=name)
    if len(text) > MAX_TEXT_CHARS:
        raise TooLarge(f"{name} has {len(text):,} characters; at most {MAX_TEXT_CHARS:,} can be sent.", name=name)
    return Attachment(name, TEXT, len(data), digest, data)


def _image_size(name: str, data: bytes) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception as exc:  # Pillow raises many kinds for a damaged file
        raise AttachmentError(f"{name} could not be read as an image ({type(exc).__name__}); it may be "
                              "damaged.", name=name) from None


def _pdf_pages(name: str, data: bytes) -> int:
    try:
        reader = _pdf_reader(data)
        if reader.is_encrypted:
            raise AttachmentError(f"{name} is password-protected; attach an unlocked copy.", name=name)
        pages = len(reader.pages)
    except AttachmentError:
        raise
    except Exception as exc:
        raise AttachmentError(f"{name} could not be read as a PDF ({type(exc).__name__}); it may be damaged.",
                              name=name) from None
    if not pages:
        raise AttachmentError(f"{name} has no pages.", name=name)
    return pages


def _pdf_reader(data: bytes):
    import pypdf

    return pypdf.PdfReader(io.BytesIO(data))


# ---------------------------------------------------------------- before sending


def check(files: Sequence[Attachment], *, limits: Limits = Limits(), model: str = "",
          image_input: bool | None = None, pdf_input: bool | None = None) -> None:
    """Raise when the files cannot go with one message to ``model``: over a limit, or a kind the model does
    not read (``image_input`` / ``pdf_input`` False; None is unknown: sent, and the provider judges)."""
    if len(files) > limits.max_files:
        raise TooLarge(f"{len(files)} files are attached; at most {limits.max_files} go with one message.")
    for f in files:
        if f.size > limits.max_file_bytes:
            raise TooLarge(f"{f.name} is {size_text(f.size)}; a file may be at most "
                           f"{size_text(limits.max_file_bytes)}.", name=f.name)
    total = sum(f.size for f in files)
    if total > limits.max_message_bytes:
        raise TooLarge(f"The files come to {size_text(total)}; one message may carry at most "
                       f"{size_text(limits.max_message_bytes)}. Send them in two messages.")
    check_readable(files, model=model, image_input=image_input, pdf_input=pdf_input)


def check_readable(files: Sequence[Attachment], *, model: str = "", image_input: bool | None = None,
                   pdf_input: bool | None = None) -> None:
    """Raise when ``model`` does not read a kind of these files (False; None is unknown: sent, and the
    provider judges). Files sent again (a Regenerate, say) are checked only so: their sizes were, when sent."""
    for f in files:
        if f.kind == "image" and image_input is False:
            raise ModelCannotRead(f"{model or 'This model'} cannot read images; pick another model or describe "
                                  "the image.", name=f.name)
        if f.kind == "pdf" and pdf_input is False:
            raise ModelCannotRead(f"{model or 'This model'} cannot read PDFs; pick another model or attach the "
                                  "text.", name=f.name)


# ---------------------------------------------------------------- what providers are sent


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@functools.lru_cache(maxsize=32)
def _prepared(sha: str, data: bytes, media_type: str, side: int, max_bytes: int) -> tuple[str, bytes]:
    """The image as sent: at most ``side`` px on its longest side and ``max_bytes``, without metadata
    (EXIF, GPS, comments). A GIF within the limits goes as it is (its frames kept); every other image is
    re-encoded, which drops its metadata. Cached per image and limits: done once per process."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        if media_type == "image/gif" and max(image.size) <= side and len(data) <= max_bytes \
                and not image.info.get("comment") and not image.info.get("exif"):
            return media_type, data
        image = ImageOps.exif_transpose(image)  # the orientation the EXIF said, before the EXIF goes
        if max(image.size) > side:
            image = image.resize(_fit(*image.size, side), Image.Resampling.LANCZOS)
        fmt = IMAGE_TYPES.get(media_type, "PNG")
        if fmt == "GIF":
            fmt, media_type = "PNG", "image/png"
        if fmt == "JPEG" and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        out = _encode(image, fmt)
        quality = 85
        while len(out) > max_bytes:  # too many bytes: JPEG, then smaller
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            fmt, media_type = "JPEG", "image/jpeg"
            out = _encode(image, fmt, quality=quality)
            if len(out) > max_bytes:
                image = image.resize(_fit(*image.size, int(max(image.size) * 0.75)), Image.Resampling.LANCZOS)
                quality = max(60, quality - 10)
        return media_type, out


def _encode(image, fmt: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt in ("JPEG", "WebP") else {}
    image.save(buffer, format=fmt, **options)  # no exif=, no pnginfo=: metadata is not carried over
    return buffer.getvalue()


def image_for(attachment: Attachment, api: str) -> tuple[str, bytes]:
    """(media type, bytes) of an image as ``api`` ("responses", "anthropic", "chat") takes it."""
    if attachment.data is None:
        raise ValueError(f"{attachment.name}: data not loaded")
    return _prepared(attachment.sha256, attachment.data, attachment.media_type, IMAGE_MAX_SIDE[api],
                     IMAGE_MAX_BYTES[api])


@functools.lru_cache(maxsize=32)
def _pdf_text(sha: str, data: bytes) -> str:
    reader = _pdf_reader(data)
    pages = []
    for number, page in enumerate(reader.pages, 1):
        try:
            text = page.extract_text() or ""
        except Exception:  # a page pypdf cannot read: said so, the others still go
            text = "(this page could not be read)"
        pages.append(f"--- page {number} ---\n{text.strip()}")
    return "\n\n".join(pages)


def pdf_text(attachment: Attachment) -> str:
    """The PDF's text, page by page (for servers that take no files)."""
    if attachment.data is None:
        raise ValueError(f"{attachment.name}: data not loaded")
    return _pdf_text(attachment.sha256, attachment.data)


def fenced(name: str, text: str, language: str = "") -> str:
    """A file's text as a fenced block with its name; the fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"File: {name}\n{fence}{language}\n{text.rstrip()}\n{fence}"


def text_of(attachment: Attachment) -> str:
    """A text file as sent to every provider: a fenced block with its name."""
    if attachment.data is None:
        raise ValueError(f"{attachment.name}: data not loaded")
    ext = _extension(attachment.name)
    return fenced(attachment.name, attachment.data.decode("utf-8-sig", "replace"), ext if ext.isalnum() else "")


def with_texts(content: str, files: Sequence[Attachment], *, pdf_as_text: bool = False) -> str:
    """The message's words followed by its text files (and, with ``pdf_as_text``, its PDFs' text) as
    fenced blocks."""
    blocks = [text_of(f) for f in files if f.kind == "text"]
    if pdf_as_text:
        blocks += [fenced(f"{f.name} (text of the PDF, {f.pages or '?'} pages)", pdf_text(f))
                   for f in files if f.kind == "pdf"]
    return "\n\n".join([content, *blocks]) if blocks else content


def data_url(media_type: str, data: bytes) -> str:
    import base64

    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------- counting


def openai_image_tokens(width: int, height: int) -> int:
    """OpenAI's documented formula (high detail): fit in 2048×2048, then the shortest side to 768 px, then
    170 tokens per 512 px tile plus 85."""
    w, h = _fit(width, height, 2048)
    scale = min(1.0, 768 / min(w, h))
    w, h = math.ceil(w * scale), math.ceil(h * scale)
    return 170 * math.ceil(w / 512) * math.ceil(h / 512) + 85


def anthropic_image_tokens(width: int, height: int) -> int:
    """Anthropic's documented estimate: width × height / 750, after the downscale to 1568 px."""
    w, h = _fit(width, height, IMAGE_MAX_SIDE["anthropic"])
    return math.ceil(w * h / 750)


def estimate_tokens(attachment: Attachment, model: str, count_text=None) -> int:
    """≈ input tokens of one attachment for ``model`` (Claude models by Anthropic's rates, others by
    OpenAI's). ``count_text(text) -> int`` counts a text file's tokens (default: 4 characters a token)."""
    claude = "claude" in model.lower()
    if attachment.kind == "image":
        w, h = attachment.width or 512, attachment.height or 512
        return anthropic_image_tokens(w, h) if claude else openai_image_tokens(w, h)
    if attachment.kind == "pdf":
        return (attachment.pages or 1) * PDF_PAGE_TOKENS["anthropic" if claude else "openai"]
    text = text_of(attachment) if attachment.data is not None else ""
    if count_text is not None and text:
        return count_text(text)
    return math.ceil((len(text) or attachment.size) / 4)


def loaded(files: Sequence[Attachment], load) -> tuple[Attachment, ...]:
    """``files`` with their data, read by ``load(sha256) -> bytes`` where missing."""
    return tuple(f if f.data is not None else replace(f, data=load(f.sha256)) for f in files)


# ---------------------------------------------------------------- how they are shown

PREVIEW_SIDE = 1600  # a thumbnail opens to this size (st.image's enlarge button)


@functools.lru_cache(maxsize=64)
def _preview(sha: str, data: bytes) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        image = ImageOps.exif_transpose(image)
        image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA")
        return _encode(image, "PNG")


def preview(sha: str, load) -> bytes:
    """An image as the page shows it: at most PREVIEW_SIDE px, PNG, no metadata (a page never receives a
    10 MB original). ``load(sha) -> bytes`` reads the stored file; the result is cached per file."""
    return _preview(sha, load(sha))


def chip(meta: dict) -> str:
    """A document's chip, as plain words (the caller escapes them): name · size · pages."""
    parts = [meta["name"], size_text(meta["size"])]
    if meta.get("pages"):
        parts.append(f"{meta['pages']} page{'s' if meta['pages'] != 1 else ''}")
    elif meta.get("width"):
        parts.append(f"{meta['width']}×{meta['height']}")
    return " · ".join(parts)
