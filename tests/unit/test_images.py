"""Images a case names: what a request holds (a reference) and what it sends (the bytes)."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt import images
from tests.support.images import GIF, jpeg_header, png

if TYPE_CHECKING:
    from pathlib import Path


def _data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


def test_a_file_becomes_a_reference_to_its_path_and_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "img").mkdir(parents=True)
    data = png()
    (tmp_path / "data" / "img" / "cat.png").write_bytes(data)
    ref = images.resolve("img/cat.png", tmp_path / "data")
    sha = hashlib.sha256(data).hexdigest()
    assert ref == f"image-file:data/img/cat.png#sha256={sha}"
    assert images.parse_ref(ref) == images.ImageRef("data/img/cat.png", sha)
    assert base64.b64encode(data).decode() not in ref


def test_https_and_data_urls_pass_through_as_they_are(tmp_path: Path) -> None:
    assert images.resolve("https://x.test/a.png", tmp_path) == "https://x.test/a.png"
    url = _data_url(png())
    assert images.resolve(url, tmp_path) == url


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "the image is empty"),
        ("http://x.test/a.png", "only https:// URLs, data: URLs and image files are sent"),
        ("ftp://x.test/a.png", "only https:// URLs"),
        ("/etc/a.png", "an absolute path would tie the recordings to this machine"),
        ("missing.png", "missing.png: no such image file (looked for "),
        ("dir", "dir: is a directory, not an image file"),
        ("notes.txt", "notes.txt: not an image of a type a model reads"),
        ("data:image/png;base64,%%%", "a data URL must read data:image/<type>;base64,<data>"),
        ("data:text/html;base64,PGI+", "text/html is not one of image/png"),
        ("data:image/png;base64,aGVsbG8=", "says image/png but holds no known image type"),
        (_data_url(GIF, "image/png"), "says image/png but holds image/gif"),
    ],
)
def test_an_image_that_cannot_be_sent_is_one_clear_error(
    tmp_path: Path, value: str, message: str
) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(images.ImageError) as info:
        images.resolve(value, tmp_path)
    assert message in str(info.value)


def _bodies(ref: str) -> list[dict[str, Any]]:
    chat = {"type": "image_url", "image_url": {"url": ref, "detail": "low"}}
    responses = {"type": "input_image", "image_url": ref, "detail": "low"}
    text = {"type": "text", "text": "what is it?"}
    return [
        {"model": "m", "messages": [{"role": "user", "content": [text, chat]}]},
        {"model": "m", "input": [{"role": "user", "content": [text, responses]}]},
    ]


def test_inline_sends_the_bytes_and_keeps_the_reference_in_the_body(tmp_path: Path) -> None:
    data = png(seed=3)
    (tmp_path / "a.png").write_bytes(data)
    ref = images.resolve("a.png", tmp_path)
    chat, responses = _bodies(ref)
    sent_chat, sent_responses = images.inline(chat), images.inline(responses)
    url = _data_url(data)
    assert sent_chat["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": url, "detail": "low"},
    }
    assert sent_responses["input"][0]["content"][1] == {
        "type": "input_image",
        "image_url": url,
        "detail": "low",
    }
    assert chat == _bodies(ref)[0]  # the kept body still names the file
    plain = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert images.inline(plain) is plain


def test_an_image_edited_after_its_request_was_built_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    ref = images.resolve("a.png", tmp_path)
    (tmp_path / "a.png").write_bytes(png(seed=9))
    with pytest.raises(images.ImageError, match="the image changed after its request was built"):
        images.inline(_bodies(ref)[0])


def test_the_colour_mode_is_read_from_the_header() -> None:
    assert [images.mode(png(color_type=t)) for t in (2, 6, 0, 4)] == ["RGB", "RGBA", "L", "LA"]
    assert [images.mode(jpeg_header(n)) for n in (3, 1, 4)] == ["RGB", "L", "CMYK"]
    assert images.mode(GIF) == "P"
    assert images.sniff(b"<svg/>") is None
