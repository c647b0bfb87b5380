#!/usr/bin/env python3
"""Fetch the GoogLeNet weights at image build time and check their SHA1.

    fetch-weights.py URL SHA1 DEST

Runs inside the image build (python3 standard library only). One retry; any failure
(unreachable host, HTTP error, wrong checksum) exits 1 with one line that names the
alternatives, so the build stops with a message a person can act on.
"""

import base64
import hashlib
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 60  # seconds without a byte before giving up on a connection
ATTEMPTS = 2  # first try + one retry
ALTERNATIVES = (
    "build without downloading: use --weights untrained, --weights PATH, "
    "or --weights-url URL --weights-sha1 HEX (docker build: --build-arg "
    "WEIGHTS=untrained | WEIGHTS=file with weights/user.caffemodel | "
    "WEIGHTS_URL=... WEIGHTS_SHA1=...)"
)


def redact(url):
    """url without user:password nor query values (never printed: build logs are kept)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        (q.split("=", 1)[0] + "=***") if "=" in q else "***" for q in parts.query.split("&") if q
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def fail(msg):
    print("ddctl: cannot get the weights: %s; %s" % (msg, ALTERNATIVES), file=sys.stderr, flush=True)
    sys.exit(1)


def download(url, dest):
    """Download url to dest; return its sha1 hex digest."""
    sha1 = hashlib.sha1()
    headers = {"User-Agent": "ddctl-build"}
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None:  # urllib does not read user:password from a URL
        cred = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode("utf-8")).decode("ascii")
        netloc = parts.netloc.rsplit("@", 1)[1]
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0)
        done, last = 0, time.monotonic()
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            sha1.update(chunk)
            out.write(chunk)
            done += len(chunk)
            if time.monotonic() - last > 5:
                last = time.monotonic()
                print("fetch-weights: %d of %s bytes" % (done, total or "?"), flush=True)
        if total and done != total:
            raise OSError("connection closed after %d of %d bytes" % (done, total))
    return sha1.hexdigest()


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, want, dest = argv[1], argv[2].strip().lower(), argv[3]
    shown = redact(url)
    if len(want) != 40 or any(c not in "0123456789abcdef" for c in want):
        fail("WEIGHTS_SHA1 %r is not a 40-digit hex SHA1" % argv[2])
    print("fetch-weights: downloading %s" % shown, flush=True)
    got, last_error = None, None
    for attempt in range(ATTEMPTS):
        try:
            got = download(url, dest)
            break
        except urllib.error.HTTPError as e:
            last_error = "%s answered HTTP %d %s" % (shown, e.code, e.reason)
            if e.code < 500:  # 404 and friends: retrying will not help
                break
        except (urllib.error.URLError, OSError, ValueError) as e:
            last_error = "%s is unreachable (%s)" % (shown, getattr(e, "reason", e))
        if attempt + 1 < ATTEMPTS:
            print("fetch-weights: %s; retrying" % last_error, flush=True)
            time.sleep(2)
    if got is None:
        _remove(dest)
        fail(last_error)
    if got != want:
        _remove(dest)
        fail("%s has SHA1 %s, expected %s" % (shown, got, want))
    print("fetch-weights: %s OK (sha1 %s, %d bytes)" % (dest, got, os.path.getsize(dest)), flush=True)
    return 0


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv))
