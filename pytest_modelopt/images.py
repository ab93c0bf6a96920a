"""Images in requests: a case names an image file, a request carries its bytes.

A prompt's image part renders to one of three things (``resolve``):

- an ``https://`` URL, passed through as it is (the API fetches it);
- a ``data:image/...;base64,...`` URL, checked (a known image type whose bytes are that
  type) and passed through;
- a path relative to the dataset file, which becomes a *reference*:
  ``image-file:<path>#sha256=<hex>``, the path as the project names it (relative to the
  directory the run started in) and the hash of the bytes.

The reference, not the bytes, is what the request body holds everywhere the body is kept:
the recorded request in the cache, the case's record, the reports. The cache key takes the
reference's hash and not its path (``key_form``): what goes out is the bytes, so an edited
image is a new request, while the same image moved, or a run started from another
directory (which names the path differently), replays. The bytes are read and
base64-encoded only when the request goes out (``inline``), into a copy of the body that
lives as long as the HTTP call: a run over thousands of images holds one image per request
in flight, never all of them, and a committed cache stays the size of its answers.
Reading checks the hash again, so an image edited during the run is that case's error,
not a silent mismatch between the recording and what was sent.

A leaf: imports nothing of the package. ``collect/`` resolves, ``model/`` and
``generate/batch.py`` inline, ``reports/`` and ``optimize/`` read references.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

SCHEME = "image-file:"
_REF = re.compile(r"^image-file:(?P<path>.+)#sha256=(?P<sha>[0-9a-f]{64})$")
_REF_PATH = re.compile(r'image-file:[^"]*?#sha256=')
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>[A-Za-z0-9+/=\s]*)$")
# What an eval request may carry (OpenAI's vision guide: PNG, JPEG, WEBP, non-animated GIF).
REQUEST_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
# Bytes read at most from one image file: far above any API's own limit, so that a path
# that names a huge file by mistake is one clear error, not a run that runs out of memory.
MAX_BYTES = 50 * 1024 * 1024

# reference -> the absolute path it was read from, so that sending does not depend on the
# working directory a test may change meanwhile (one short string a distinct image)
_FILES: dict[str, str] = {}
# (absolute path, mtime_ns, size) -> sha256: each image is hashed once a run, whatever the
# number of models and samples that send it
_HASHES: dict[tuple[str, int, int], tuple[str, str | None]] = {}


class ImageError(ValueError):
    """An image that cannot be sent; the message says which and what to do (the caller
    adds where: the case, its line and field)."""


class ImageRef(NamedTuple):
    """A referenced image file: its path as the project names it, and its bytes' hash."""

    path: str
    sha256: str

    def url(self) -> str:
        return f"{SCHEME}{self.path}#sha256={self.sha256}"


def sniff(data: bytes) -> str | None:
    """The image's media type from its first bytes (its magic number), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return None


_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}
_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # components of the frame (YCbCr reads as RGB)


def mode(data: bytes) -> str | None:
    """The image's colour mode as Pillow names it (``RGB``, ``RGBA``, ``L``, ``P``,
    ``CMYK``...), read from its header; None when the header does not say. Enough to check
    OpenAI's "RGB or RGBA" rule for fine-tuning images without an imaging library."""
    kind = sniff(data)
    if kind == "image/png" and len(data) > 25 and data[12:16] == b"IHDR":
        return _PNG_MODES.get(data[25])
    if kind == "image/jpeg":
        return _jpeg_mode(data)
    if kind == "image/webp":
        chunk = data[12:16]
        if chunk == b"VP8X" and len(data) > 20:
            return "RGBA" if data[20] & 0x10 else "RGB"
        if chunk == b"VP8L" and len(data) > 24:
            return "RGBA" if data[24] & 0x10 else "RGB"
        return "RGB" if chunk == b"VP8 " else None
    if kind == "image/gif":
        return "P"
    return None


def _jpeg_mode(data: bytes) -> str | None:
    """The number of components of a JPEG's frame header (its SOF segment)."""
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return _JPEG_MODES.get(data[at + 9])
        at += 2 + length
    return None


def key_form(canonical: str) -> str:
    """A request's canonical JSON as its cache key reads it: each image reference stands
    for its bytes (its hash), wherever the file was found (module docstring)."""
    return _REF_PATH.sub(SCHEME + "#sha256=", canonical) if SCHEME in canonical else canonical


def parse_ref(url: Any) -> ImageRef | None:
    """The reference an image URL is, or None for any other URL."""
    if not isinstance(url, str) or not url.startswith(SCHEME):
        return None
    match = _REF.match(url)
    return None if match is None else ImageRef(match["path"], match["sha"])


def resolve(value: str, base: str | os.PathLike[str] | None) -> str:
    """What an image part's rendered URL becomes in the request (module docstring).

    ``base``: the directory relative paths start from (the dataset file's). Raises
    ``ImageError`` for a missing, unreadable or unknown image, a non-https URL, or a data
    URL that is not a known image."""
    text = value.strip()
    if not text:
        raise ImageError("the image is empty: name an image file, an https URL or a data URL")
    lower = text[:12].lower()
    if lower.startswith("https://"):
        return text
    if lower.startswith("data:"):
        check_data_url(text)
        return text
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        raise ImageError(
            f"{_short(text)}: only https:// URLs, data: URLs and image files are sent; "
            "download the image and name the file"
        )
    if Path(text).is_absolute():
        raise ImageError(
            f"{_short(text)}: an absolute path would tie the recordings to this machine: "
            "write it relative to the dataset file"
        )
    path = Path(base or ".") / text
    resolved = os.path.abspath(path)
    sha, media = _hash(resolved, text)
    if media not in REQUEST_TYPES:
        known = ", ".join(REQUEST_TYPES)
        raise ImageError(f"{text}: not an image of a type a model reads ({known})")
    ref = ImageRef(_project_path(resolved), sha).url()
    _FILES[ref] = resolved
    return ref


def _hash(resolved: str, shown: str) -> tuple[str, str | None]:
    """(sha256, media type) of an image file, read once per (file, mtime, size)."""
    try:
        stat = os.stat(resolved)
    except FileNotFoundError:
        raise ImageError(f"{shown}: no such image file (looked for {resolved})") from None
    except OSError as exc:
        raise ImageError(f"{shown}: cannot read the image: {exc.strerror or exc}") from None
    key = (resolved, stat.st_mtime_ns, stat.st_size)
    known = _HASHES.get(key)
    if known is not None:
        return known
    data = read(resolved, shown)
    found = _HASHES[key] = (hashlib.sha256(data).hexdigest(), sniff(data))
    return found


def read(path: str | os.PathLike[str], shown: str) -> bytes:
    """An image file's bytes, within ``MAX_BYTES``; ``ImageError`` when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise ImageError(f"{shown}: is a directory, not an image file") from None
    except FileNotFoundError:
        raise ImageError(f"{shown}: no such image file (looked for {path})") from None
    except OSError as exc:
        raise ImageError(f"{shown}: cannot read the image: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ImageError(f"{shown}: larger than {MAX_BYTES // (1024 * 1024)} MB: make it smaller")
    return data


def _project_path(resolved: str) -> str:
    """The path as the project names it: relative to the run's starting directory when
    the image is inside it (the same on every machine), else absolute."""
    relative = os.path.relpath(resolved)
    if relative.startswith(".."):
        return Path(resolved).as_posix()
    return Path(relative).as_posix()


def check_data_url(url: str) -> tuple[str, bytes]:
    """(media type, bytes) of a data URL that holds a known image; else ``ImageError``."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ImageError(f"{_short(url)}: a data URL must read data:image/<type>;base64,<data>")
    media = match["media"].lower()
    if media not in REQUEST_TYPES:
        raise ImageError(f"{_short(url)}: {media} is not one of {', '.join(REQUEST_TYPES)}")
    try:
        data = base64.b64decode(re.sub(r"\s", "", match["data"]), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{_short(url)}: the data URL's base64 does not decode") from None
    found = sniff(data)
    if found != media:
        raise ImageError(f"{_short(url)}: says {media} but holds {found or 'no known image type'}")
    return media, data


def read_ref(ref: ImageRef, path: str | os.PathLike[str] | None = None) -> bytes:
    """The referenced image's bytes, read from ``path`` (default: where ``resolve`` found
    it, else its path from the working directory); ``ImageError`` unless they still have
    the hash the reference names."""
    source = path or _FILES.get(ref.url()) or ref.path
    data = read(source, ref.path)
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise ImageError(
            f"{ref.path}: the image changed after its request was built (sha256 "
            f"{ref.sha256[:12]}...): run again"
        )
    return data


def url_bytes(url: str) -> bytes | None:
    """The bytes of the image a reference or a data URL holds; None for an https URL (it is
    the API's to fetch: nothing here fetches). ``ImageError`` for anything else."""
    if url.lower().startswith("https://"):
        return None
    ref = parse_ref(url)
    if ref is not None:
        return read_ref(ref)
    if url.lower().startswith("data:"):
        return check_data_url(url)[1]
    raise ImageError(f"{_short(url)} is not an https URL, a data URL or an image file")


def data_url(ref: ImageRef, path: str | os.PathLike[str] | None = None) -> str:
    """The referenced image as a data URL, read from ``path`` (default: where ``resolve``
    found it, else its path from the working directory); its hash must still match."""
    data = read_ref(ref, path)
    media = sniff(data) or "application/octet-stream"
    return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"


def inline(body: dict[str, Any]) -> dict[str, Any]:
    """The body as it is sent: each image reference in its messages (chat ``messages``,
    Responses ``input``) replaced by the image's data URL. The same object when there is
    none (the common case costs a look at each content part), else a copy: the body that
    is kept (cache, records) keeps its references."""
    for key in ("messages", "input"):
        messages = body.get(key)
        if isinstance(messages, list) and any(_refs_in(m) for m in messages):
            return {**body, key: [_inlined(m) for m in messages]}
    return body


def _parts(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, list) else []


def _url_of(part: Any) -> Any:
    """An image part's URL, in either API's shape (chat nests it, Responses does not)."""
    if not isinstance(part, dict):
        return None
    image = part.get("image_url")
    return image.get("url") if isinstance(image, dict) else image


def _refs_in(message: Any) -> bool:
    return any(parse_ref(_url_of(part)) is not None for part in _parts(message))


def _inlined(message: Any) -> Any:
    if not _refs_in(message):
        return message
    parts = []
    for part in _parts(message):
        ref = parse_ref(_url_of(part))
        if ref is not None:
            url = data_url(ref)
            image = part["image_url"]
            part = {**part, "image_url": {**image, "url": url} if isinstance(image, dict) else url}
        parts.append(part)
    return {**message, "content": parts}


def refs(messages: Any) -> list[ImageRef]:
    """Every image reference in a list of messages (a record's input), in order."""
    if not isinstance(messages, list):
        return []
    return [
        ref
        for message in messages
        for part in _parts(message)
        if (ref := parse_ref(_url_of(part))) is not None
    ]


def image_urls(messages: Any) -> list[tuple[str, str]]:
    """(role, URL) of every image part in a list of messages, whatever its kind."""
    if not isinstance(messages, list):
        return []
    return [
        (str(message.get("role")), url)
        for message in messages
        for part in _parts(message)
        if isinstance(url := _url_of(part), str)
    ]


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
