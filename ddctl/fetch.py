"""Get the input picture onto the host and prove it is a picture, before any container starts.

URLs are fetched with requests (timeouts, redirects followed, a size cap, streamed to a
file); the server's Content-Type is not trusted: the bytes are opened with Pillow,
verified, decoded in full (truncation) and their dimensions checked against a cap
(decompression bombs). Every refusal is one sentence (UsageError, or DdctlError when
the network is at fault).
"""

import os
import re
import time
import urllib.parse
import warnings
from dataclasses import dataclass

import requests
from PIL import Image, UnidentifiedImageError

from ddctl import __version__
from ddctl.errors import DdctlError, UsageError

MAX_BYTES = int(os.environ.get("DDCTL_MAX_DOWNLOAD_MB", "50")) * 1000 * 1000
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's own bomb threshold
CONNECT_TIMEOUT = 10  # seconds to connect
READ_TIMEOUT = 30  # seconds without a byte
TOTAL_TIMEOUT = 300  # seconds for the whole download
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
    def filename(self):
        return self.stem + _EXT.get(self.format, os.path.splitext(self.path)[1] or ".img")


def is_url(source):
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source))


def safe_stem(name, default="picture"):
    """A file-name stem made of [A-Za-z0-9._-] only, at most 60 characters."""
    stem = os.path.splitext(os.path.basename(name))[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:60]
    return stem or default


def _mb(n):
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _sniff(head, content_type=""):
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
    try:
        head[:1024].decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        pass
    kind = content_type.split(";")[0].strip()
    return f"not a picture ({kind})" if kind and not kind.startswith("image/") else "not a picture"


def verify_picture(path, label, content_type="", max_pixels=MAX_PIXELS):
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
        if what == "empty":
            raise UsageError(f"{label} is empty, not a picture.")
        if what == "text":
            raise UsageError(f"{label} is text, not a picture.")
        raise UsageError(f"{label} is {what}: give a JPEG, PNG, WebP, GIF, BMP or TIFF file.")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UsageError(f"{label} is a damaged or truncated picture ({_one_line(exc)}).")
    return w, h, fmt


def _one_line(exc):
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def open_local(path):
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


def download(url, dest_dir, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, session=None):
    """Fetch url into dest_dir; a verified Picture, or one sentence why not."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"{url}: only http:// and https:// addresses or local files are supported.")
    if not parts.hostname:
        raise UsageError(f"{url} is not a valid address (no host).")
    session = session or requests.Session()
    session.max_redirects = MAX_REDIRECTS
    stem = safe_stem(urllib.parse.unquote(parts.path))
    tmp = os.path.join(dest_dir, "download.part")
    started = time.monotonic()
    try:
        with session.get(
            url,
            stream=True,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            allow_redirects=True,
            headers={"User-Agent": f"ddctl/{__version__}", "Accept": "image/*,*/*;q=0.5"},
        ) as r:
            if r.status_code >= 400:
                raise UsageError(
                    f"{url} answered {r.status_code} {r.reason or ''}".rstrip()
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
                    f"{url} is {_mb(int(length))}, more than the {_mb(max_bytes)} "
                    f"allowed: use a smaller picture."
                )
            got = 0
            with open(tmp, "wb") as out:
                for block in r.iter_content(64 * 1024):
                    got += len(block)
                    if got > max_bytes:
                        raise UsageError(
                            f"{url} is larger than the {_mb(max_bytes)} allowed: use a smaller picture."
                        )
                    if time.monotonic() - started > TOTAL_TIMEOUT:
                        raise DdctlError(
                            f"{url} took more than {TOTAL_TIMEOUT} s to download: "
                            f"save it yourself and give the file."
                        )
                    out.write(block)
            if length and length.isdigit() and got < int(length):
                raise UsageError(f"{url} was cut off after {got} of {length} bytes: try again.")
            final_url = r.url
    except requests.exceptions.TooManyRedirects:
        raise UsageError(
            f"{url} redirects more than {MAX_REDIRECTS} times: give the picture's final address."
        )
    except requests.exceptions.SSLError as exc:
        raise DdctlError(f"{url}: the TLS connection failed ({_reason(exc)}).")
    except requests.exceptions.ConnectTimeout:
        raise DdctlError(
            f"{url} did not answer within {CONNECT_TIMEOUT} s: check the address and your network."
        )
    except requests.exceptions.ReadTimeout:
        raise DdctlError(f"{url} stopped sending for {READ_TIMEOUT} s: try again later.")
    except requests.exceptions.ConnectionError as exc:
        raise DdctlError(
            f"Cannot reach {parts.hostname} for {url} ({_reason(exc)}): check the address and your network."
        )
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        ValueError,
    ) as exc:
        raise UsageError(f"{url} is not a valid address ({_one_line(exc)}).")
    except requests.exceptions.RequestException as exc:
        raise DdctlError(f"Downloading {url} failed ({_reason(exc)}).")
    if final_url and final_url != url:
        stem = safe_stem(urllib.parse.unquote(urllib.parse.urlsplit(final_url).path), stem)
    w, h, fmt = verify_picture(tmp, url, content_type, max_pixels)
    path = os.path.join(dest_dir, stem + _EXT.get(fmt, ".img"))
    os.replace(tmp, path)
    return Picture(path=path, stem=stem, width=w, height=h, format=fmt, source=url)


def _reason(exc):
    """The innermost useful words of a requests exception."""
    text = " ".join(str(exc).split())
    for pat in (
        r"\[Errno -?\d+\] ([^'\")\]]+)",
        r"(Connection refused)",
        r"(Name or service not known)",
        r"(certificate verify failed[^')]*)",
    ):
        m = re.search(pat, text)
        if m:
            return m.group(1).strip().rstrip(".")
    return text[:150]


def get_picture(source, dest_dir, **kw):
    """A verified Picture for a URL (downloaded into dest_dir) or a local file."""
    if is_url(source):
        return download(source, dest_dir, **kw)
    return open_local(source)
