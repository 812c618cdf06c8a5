"""Making text safe to show: no terminal control sequences, no credentials inside URLs.

Runbooks, model replies and file names are data, yet a terminal obeys the control
characters inside them: ``ESC ] 52`` writes the clipboard, ``ESC ] 0`` sets the window
title, ``ESC [ 1A`` moves the cursor up over earlier output. :func:`strip_controls` removes
them from text bound for a screen; :func:`escape_json_controls` keeps them as data in JSON.
:func:`mask_url` hides the password of a URL setting (``http://svc:PASS@host``) wherever
one is shown: ``doctor``, error lines, ``/v1/collections``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "escape_json_controls", "mask_url", "mask_urls", "strip_controls"]

#: What a masked secret is shown as.
MASK = "***"

# Whole sequences first, so no "[2K" or "]0;title" is left behind: CSI (ESC [ or C1 CSI, up to
# its final byte) and OSC (ESC ] or C1 OSC, up to BEL or ST; unterminated ones lose only the
# introducer). Then any other C0 (but newline and tab), DEL, C1, and lone surrogates: the last
# are not text at all and make a UTF-8 stream raise (file names that are not UTF-8 decode to them).
_UNSAFE = re.compile(
    "(?:\x1b\\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    "|(?:\x1b\\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)"
    "|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]"
)
# json.dumps(ensure_ascii=False) escapes C0 itself; DEL, C1 and lone surrogates pass through.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff]")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>(){}]+")
_SECRET_PARAM = re.compile(r"token|key|password|passwd|pwd|secret|signature|sig$|credential|auth", re.IGNORECASE)


def strip_controls(text: str) -> str:
    """``text`` without control characters (C0 but newline and tab, DEL, C1) or lone surrogates."""
    # The search is the common case (clean text) and much cheaper than a substitution.
    return _UNSAFE.sub("", text) if _UNSAFE.search(text) else text


def escape_json_controls(document: str) -> str:
    """A JSON document with DEL, C1 controls and lone surrogates written as ``\\uXXXX`` escapes.

    Outside strings JSON is ASCII, so every such character is inside a string, where the
    escape decodes to the same value: the data is unchanged, only a terminal is spared.
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


def mask_url(url: str) -> str:
    """``url`` with its password, a lone user-info part, and secret-named query values as ``***``.

    ``http://svc:PASS@host/v1`` → ``http://svc:***@host/v1``; ``https://TOKEN@host`` →
    ``https://***@host``; ``?api_key=K&x=1`` → ``?api_key=***&x=1``. Anything else is kept.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL (say, a bad IPv6 host) can still carry a password
        return re.sub(r"(//)[^/@\s]*@", rf"\g<1>{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    query = parts.query
    if query:
        fields = []
        for item in query.split("&"):
            name, equals, value = item.partition("=")
            fields.append(f"{name}={MASK}" if equals and value and _SECRET_PARAM.search(name) else item)
        query = "&".join(fields)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_urls(text: str) -> str:
    """``text`` with :func:`mask_url` applied to every URL in it (for messages that quote one)."""
    return _URL.sub(lambda m: mask_url(m.group()), text) if "://" in text else text
