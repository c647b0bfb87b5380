"""Secrets never shown nor stored: user:password and query strings of URLs.

`redact_url` is for a URL ddctl prints or stores (messages, events, image labels);
`scrub` removes a URL's secrets from any text (an exception's words quote the URL's
path and query in their own forms).
"""

import re
import urllib.parse
from collections.abc import Iterable
from typing import Optional

MASK = "***"
_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# A URL urlsplit refuses (an unclosed IPv6 bracket): its parts read by hand, so that the
# user still sees what they typed, less what could be a secret.
_ROUGH = re.compile(
    r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?:(?P<info>[^/?#]*)@)?(?P<rest>[^?#]*)(?:\?(?P<query>[^#]*))?"
)


def _rough(url: str) -> tuple[Optional[str], list[str]]:
    m = _ROUGH.match(url)
    if not m:
        return None, []
    shown = m.group("scheme") + (MASK + "@" if m.group("info") is not None else "") + m.group("rest")
    if m.group("query") is not None:
        shown += "?" + MASK
    return shown, [x for x in (m.group("info"), m.group("query")) if x]


def redact_url(url: str) -> str:
    """url with its user info and query values replaced by ***; other text unchanged."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return _rough(url)[0] or MASK
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        query = "&".join(
            (item.split("=", 1)[0] + "=" + MASK) if "=" in item else MASK for item in query.split("&")
        )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets_of(url: str) -> list[str]:
    """The parts of url that must never be shown: user, password, query values (raw and decoded)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        shown, found = _rough(url)
        return sorted(found, key=len, reverse=True) if shown else [url]
    found = []
    if "@" in parts.netloc:
        info = parts.netloc.rsplit("@", 1)[0]
        found += info.split(":", 1)
    if parts.query:
        found.append(parts.query)
        for item in parts.query.split("&"):
            found.append(item.split("=", 1)[-1])
    out = []
    for s in found:
        for v in (s, urllib.parse.unquote(s), urllib.parse.unquote_plus(s)):
            if len(v) >= 3 and v not in out:  # a 1-2 character value would mask ordinary words
                out.append(v)
    return sorted(out, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """text with every URL redacted and each of `secrets` replaced by ***."""
    text = _URL_RE.sub(lambda m: redact_url(m.group(0)), str(text))
    for s in secrets:
        if s:
            text = text.replace(s, MASK)
    return text
