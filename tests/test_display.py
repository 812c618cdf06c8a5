"""Text made safe to show: control sequences stripped (or escaped in JSON), URL credentials masked."""

from __future__ import annotations

import json

import pytest

from opsmith._display import escape_json_controls, mask_url, mask_urls, strip_controls


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("copy\x1b]52;c;ZXZpbA==\x07this", "copythis"),  # OSC 52 clipboard write, BEL-terminated
        ("a\x1b]0;title\x1b\\b", "ab"),  # OSC 0 window title, ST-terminated
        ("up\x1b[2K\x1b[1Aover", "upover"),  # erase line, cursor up
        ("red\x1b[1;31mtext\x1b[0m", "redtext"),
        ("c1\x9b31m csi\x9d0;t\x9c osc", "c1 csi osc"),  # the one-byte C1 forms
        ("x\x1b]52;no terminator", "x]52;no terminator"),  # only the introducer: the text stays
        ("bell\x07 bs\x08 cr\r del\x7f nul\x00 nel\x85", "bell bs cr del nul nel"),
        ("cut emoji \ud83d", "cut emoji "),  # a lone surrogate cannot even be encoded
        ("tabs\tand\nnewlines stay; so do é, — and 🔥", "tabs\tand\nnewlines stay; so do é, — and 🔥"),
        ("[bold red]markup is not ours to strip[/]", "[bold red]markup is not ours to strip[/]"),
    ],
)
def test_strip_controls(text: str, shown: str) -> None:
    assert strip_controls(text) == shown


def test_json_escapes_keep_the_data_and_spare_the_terminal() -> None:
    data = {"text": "c0 \x1b[2K c1 \x9b31m del \x7f half \ud83d ok é"}
    document = escape_json_controls(json.dumps(data, ensure_ascii=False))
    for char in ("\x1b", "\x9b", "\x7f", "\ud83d"):
        assert char not in document
    assert "é" in document  # other text stays readable
    assert json.loads(document) == data


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://svc:PASS@vllm:8000/v1", "http://svc:***@vllm:8000/v1"),
        ("https://TOKEN@qdrant.example:6333", "https://***@qdrant.example:6333"),
        ("http://h/v1?api_key=K&model=x&token=T", "http://h/v1?api_key=***&model=x&token=***"),
        ("http://h/?password=P&Secret=S&sig=G", "http://h/?password=***&Secret=***&sig=***"),
        ("http://u:p@[::1]:6333/x#frag", "http://u:***@[::1]:6333/x#frag"),
        ("http://localhost:8000/v1", "http://localhost:8000/v1"),
        ("http://h/?key=", "http://h/?key="),
        ("http://u:p@[::1", "http://***@[::1"),  # unparseable, still masked
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_urls_masks_every_url_in_a_message() -> None:
    message = "Cannot reach http://u:PW@127.0.0.1:1/v1 (see postgres://app:DBPW@db/x) — check OPSMITH_BASE_URL"
    assert mask_urls(message) == (
        "Cannot reach http://u:***@127.0.0.1:1/v1 (see postgres://app:***@db/x) — check OPSMITH_BASE_URL"
    )
    assert mask_urls("no URL here") == "no URL here"
