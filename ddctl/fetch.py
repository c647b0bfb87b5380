"""Get the input picture onto the host and prove it is a picture, before any container starts.

URLs are fetched with requests (timeouts, redirects followed, a size cap, streamed to a
file); the server's Content-Type is not trusted: the bytes are opened with Pillow,
verified, decoded in full (truncation) and their dimensions checked against a cap
(decompression bombs). Every refusal is one sentence (UsageError, or DdctlError when
the network is at fault).
"""

import contextlib
import os
import re
import socket
import threading
import time
import urllib.parse
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import requests
from PIL import Image, UnidentifiedImageError

from ddctl import __version__
from ddctl.errors import DdctlError, UsageError, one_line
from ddctl.limits import env_number
from ddctl.redact import redact_url, scrub, secrets_of
from ddctl.run.naming import safe_stem

MAX_MB = 50  # default of DDCTL_MAX_DOWNLOAD_MB (read when a download starts)
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's own bomb threshold
CONNECT_TIMEOUT = 10  # seconds to connect
READ_TIMEOUT = 30  # seconds without a byte
TOTAL_TIMEOUT = 300  # seconds for the whole download (DDCTL_DOWNLOAD_TIMEOUT)
MAX_REDIRECTS = 10
_EXT = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "MPO": ".jpg",
    "PPM": ".ppm",
}


@dataclass
class Picture:
    path: str  # a file on the host holding verified picture bytes
    stem: str  # the name the output is made from (the engine's --name)
    width: int
    height: int
    format: str  # Pillow's format name: JPEG, PNG, WEBP...
    source: str  # what the user gave

    @property
    def filename(self) -> str:
        return self.stem + _EXT.get(self.format, os.path.splitext(self.path)[1] or ".img")


def is_url(source: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source))


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _sniff(head: bytes, content_type: str = "") -> str:
    """What the bytes look like when they are not a picture: 'an HTML page', 'text', ..."""
    low = head[:1024].lstrip().lower()
    if (
        "html" in content_type
        or low.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))
        or b"<html" in low
    ):
        return "an HTML page"
    if not head:
        return "empty"
    if b"<svg" in low or low.startswith(b"<?xml") and b"svg" in low:
        return "an SVG drawing"
    try:
        head[:1024].decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        pass
    kind = content_type.split(";")[0].strip()
    return f"not a picture ({kind})" if kind and not kind.startswith("image/") else "not a picture"


def verify_picture(
    path: str, label: str, content_type: str = "", max_pixels: int = MAX_PIXELS
) -> tuple[int, int, str]:
    """(width, height, format) of the picture at path; UsageError in one sentence otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, (w, h) = im.format, im.size
                if w * h > max_pixels:
                    raise UsageError(
                        f"{label} is {w}x{h} pixels, more than the {max_pixels:,} allowed: "
                        f"use a smaller picture."
                    )
                im.verify()  # structure and checksums
            with Image.open(path) as im:
                im.load()  # every byte decodes (truncation shows here)
    except UsageError:
        raise
    except Image.DecompressionBombError:
        raise UsageError(
            f"{label} has more pixels than the {max_pixels:,} allowed "
            f"(a decompression bomb?): use a smaller picture."
        )
    except UnidentifiedImageError:
        with open(path, "rb") as f:
            head = f.read(4096)
        what = _sniff(head, content_type)
        if what == "an HTML page":
            raise UsageError(
                f"{label} is an HTML page, not a picture: give the address of the "
                f"picture itself (right-click it, copy image address)."
            )
        if what == "an SVG drawing":
            raise UsageError(
                f"{label} is an SVG drawing (vector graphics), not a picture made of pixels: "
                f"convert it to PNG first (e.g. rsvg-convert or inkscape)."
            )
        if what == "empty":
            raise UsageError(f"{label} is empty, not a picture.")
        if what == "text":
            raise UsageError(f"{label} is text, not a picture.")
        raise UsageError(f"{label} is {what}: give a JPEG, PNG, WebP, GIF, BMP or TIFF file.")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UsageError(f"{label} is a damaged or truncated picture ({_one_line(exc)}).")
    return w, h, fmt


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def open_local(path: str) -> Picture:
    """A Picture for a local file, verified."""
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        raise UsageError(f"{path}: no such file (give an http(s) URL or a picture file).")
    if not os.path.isfile(full):
        raise UsageError(f"{path} is not a file (give an http(s) URL or a picture file).")
    if not os.access(full, os.R_OK):
        raise UsageError(f"{path} cannot be read by this user (permission denied).")
    w, h, fmt = verify_picture(full, path)
    return Picture(path=full, stem=safe_stem(full), width=w, height=h, format=fmt, source=path)


def max_download_bytes(env: Optional[Mapping[str, str]] = None) -> int:
    """DDCTL_MAX_DOWNLOAD_MB (default 50) in bytes."""
    return env_number("DDCTL_MAX_DOWNLOAD_MB", MAX_MB, 1, 100_000, env) * 1000 * 1000


def check_settings(env: Optional[Mapping[str, str]] = None) -> None:
    """Refuse a bad DDCTL_MAX_DOWNLOAD_MB / DDCTL_DOWNLOAD_TIMEOUT before anything else."""
    max_download_bytes(env)
    download_deadline(env)


def download_deadline(env: Optional[Mapping[str, str]] = None) -> int:
    """DDCTL_DOWNLOAD_TIMEOUT (default 300): seconds a whole download may take."""
    return env_number("DDCTL_DOWNLOAD_TIMEOUT", TOTAL_TIMEOUT, 1, 86_400, env)


class _Transfer:
    """One download, run in a worker thread so that the total deadline holds whatever the
    server does (one byte every few seconds never ends a blocking read)."""

    def __init__(self, session: requests.Session, url: str, tmp: str, max_bytes: int, shown: str) -> None:
        self.session, self.url, self.tmp, self.max_bytes, self.shown = session, url, tmp, max_bytes, shown
        self.response: Optional[requests.Response] = None
        self.headers_seen = False
        self.got = 0
        self.cancelled = False
        self.error: Optional[BaseException] = None
        self.result: Optional[tuple[str, str]] = None

    def __call__(self) -> None:
        try:
            self.result = self._get()
        except BaseException as exc:  # handed to the main thread
            self.error = exc

    def _get(self) -> Optional[tuple[str, str]]:
        url, shown, max_bytes = self.url, self.shown, self.max_bytes
        with self.session.get(
            url,
            stream=True,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            allow_redirects=True,
            headers={"User-Agent": f"ddctl/{__version__}", "Accept": "image/*,*/*;q=0.5"},
        ) as r:
            self.response = r
            self.headers_seen = True
            if r.status_code >= 400:
                raise UsageError(
                    f"{shown} answered {r.status_code} {r.reason or ''}".rstrip()
                    + (
                        ": check the address."
                        if r.status_code < 500
                        else ": the server failed; try again later."
                    )
                )
            content_type = r.headers.get("Content-Type", "")
            length = r.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise UsageError(
                    f"{shown} is {_mb(int(length))}, more than the {_mb(max_bytes)} "
                    f"allowed (DDCTL_MAX_DOWNLOAD_MB): use a smaller picture."
                )
            with open(self.tmp, "wb") as out:
                for block in r.iter_content(64 * 1024):
                    if self.cancelled:
                        return None
                    self.got += len(block)
                    if self.got > max_bytes:
                        raise UsageError(
                            f"{shown} is larger than the {_mb(max_bytes)} allowed "
                            f"(DDCTL_MAX_DOWNLOAD_MB): use a smaller picture."
                        )
                    out.write(block)
            encoded = r.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
            if length and length.isdigit() and not encoded and self.got < int(length):
                raise UsageError(f"{shown} was cut off after {self.got} of {length} bytes: try again.")
            return content_type, r.url

    def abort(self) -> None:
        """Stop the worker: shut its socket down so that a blocked read returns at once."""
        self.cancelled = True
        r = self.response
        conn = getattr(getattr(r, "raw", None), "_connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if r is not None:
            with contextlib.suppress(Exception):
                r.close()


def download(
    url: str,
    dest_dir: str,
    max_bytes: Optional[int] = None,
    max_pixels: int = MAX_PIXELS,
    session: Optional[requests.Session] = None,
    deadline: Optional[float] = None,
) -> Picture:
    """Fetch url into dest_dir; a verified Picture, or one sentence why not.

    Never shows the URL's user:password nor its query values (redact_url)."""
    shown = redact_url(url)
    hidden = secrets_of(url)
    max_bytes = max_download_bytes() if max_bytes is None else max_bytes
    deadline = download_deadline() if deadline is None else deadline
    try:
        parts = urllib.parse.urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:
        raise UsageError(f"{shown} is not a valid address ({scrub(_one_line(exc), hidden)}).")
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"{shown}: only http:// and https:// addresses or local files are supported.")
    if not hostname:
        raise UsageError(f"{shown} is not a valid address (no host).")
    session = session or requests.Session()
    session.max_redirects = MAX_REDIRECTS
    stem = safe_stem(urllib.parse.unquote(parts.path))
    tmp = os.path.join(dest_dir, "download.part")
    job = _Transfer(session, url, tmp, max_bytes, shown)
    worker = threading.Thread(target=job, name="ddctl-download", daemon=True)
    ends = time.monotonic() + deadline
    worker.start()
    try:
        while worker.is_alive():
            left = ends - time.monotonic()
            if left <= 0:
                raise DdctlError(
                    f"{shown} took more than {deadline} s to download (DDCTL_DOWNLOAD_TIMEOUT; "
                    f"{job.got} bytes arrived): save it yourself and give the file."
                )
            worker.join(min(0.2, left))  # short joins: Ctrl-C stays responsive
    except BaseException:
        job.abort()
        raise
    if job.error is not None:
        raise _explain(job.error, job, shown, hidden, hostname)
    if job.result is None:  # cancelled: cannot happen once the worker ended on its own
        raise DdctlError(f"Downloading {shown} was stopped.")
    content_type, final_url = job.result
    if final_url and final_url != url:
        stem = safe_stem(urllib.parse.unquote(urllib.parse.urlsplit(final_url).path), stem)
    w, h, fmt = verify_picture(tmp, shown, content_type, max_pixels)
    path = os.path.join(dest_dir, stem + _EXT.get(fmt, ".img"))
    os.replace(tmp, path)
    return Picture(path=path, stem=stem, width=w, height=h, format=fmt, source=shown)


def _explain(
    exc: BaseException, job: _Transfer, shown: str, hidden: list[str], hostname: Optional[str]
) -> DdctlError:
    """The DdctlError for what went wrong in a download: one sentence, no secret."""
    if isinstance(exc, DdctlError):
        return exc
    reason = scrub(_reason(exc), hidden)
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return UsageError(
            f"{shown} redirects more than {MAX_REDIRECTS} times: give the picture's final address."
        )
    if isinstance(exc, requests.exceptions.SSLError):
        if "WRONG_VERSION_NUMBER" in str(exc) or "wrong version number" in str(exc):
            return DdctlError(
                f"{shown}: the server does not speak TLS there (WRONG_VERSION_NUMBER): "
                f"try http:// instead of https://, or the right port."
            )
        return DdctlError(f"{shown}: the TLS connection failed ({reason}).")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return DdctlError(
            f"{shown} sent a compressed (gzip/deflate) body that does not decode after "
            f"{job.got} bytes: try again, or save the picture yourself and give the file."
        )
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in str(exc):
        return DdctlError(f"{shown} was cut off after {job.got} bytes (the connection broke): try again.")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return DdctlError(
            f"{shown} did not answer within {CONNECT_TIMEOUT} s: check the address and your network."
        )
    if isinstance(exc, requests.exceptions.ReadTimeout) and not job.headers_seen:
        return DdctlError(
            f"{shown} accepted the connection but did not answer for {READ_TIMEOUT} s: try again later."
        )
    if isinstance(exc, requests.exceptions.ReadTimeout) or (
        job.headers_seen and "timed out" in str(exc).lower()
    ):
        when = "after its headers" if job.got == 0 else f"after {job.got} bytes"
        return DdctlError(
            f"{shown} answered, then stopped sending for {READ_TIMEOUT} s {when}: try again later."
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        if job.headers_seen:
            return DdctlError(
                f"{shown} answered, then the connection broke after {job.got} bytes ({reason}): try again."
            )
        return DdctlError(
            f"Cannot reach {hostname} for {shown} ({reason}): check the address and your network."
        )
    if isinstance(
        exc,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            ValueError,
        ),
    ):
        return UsageError(f"{shown} is not a valid address ({scrub(_one_line(exc), hidden)}).")
    if isinstance(exc, requests.exceptions.RequestException):
        return DdctlError(f"Downloading {shown} failed ({reason}).")
    if isinstance(exc, OSError):
        return DdctlError(f"Downloading {shown} failed: {exc.strerror or reason}.")
    return DdctlError(f"Downloading {shown} failed ({reason}).")


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a requests exception, whole (no cut mid-word)."""
    text = " ".join(str(exc).split())
    for pat in (
        r"\[Errno -?\d+\] ([^'\")\]]+)",
        r"(Connection refused)",
        r"(Name or service not known)",
        r"(certificate verify failed[^')]*)",
        r"(IncompleteRead\([^)]*\))",
        r"\[SSL: ([A-Z_]+)\]",
    ):
        m = re.search(pat, text)
        if m:
            return m.group(1).strip().rstrip(".")
    return one_line(text, 160)


def get_picture(source: str, dest_dir: str, **kw: Any) -> Picture:
    """A verified Picture for a URL (downloaded into dest_dir) or a local file."""
    if is_url(source):
        return download(source, dest_dir, **kw)
    return open_local(source)
