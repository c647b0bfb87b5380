"""Issue 9 on the download: a total deadline against a drip server, one clear sentence for
each way a server misbehaves, no secret of a URL ever shown, env vars that never break import.

Real sockets on 127.0.0.1 (a scripted raw HTTP server in a thread), real requests."""

import gzip
import io
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image

from ddctl import fetch
from ddctl.errors import DdctlError, UsageError
from ddctl.fetch import download, download_deadline, max_download_bytes
from ddctl.redact import redact_url, scrub, secrets_of


def jpeg():
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


JPEG = jpeg()


def _drip(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(200):
        conn.sendall(b"x")
        time.sleep(0.5)


def _stall(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
    time.sleep(10)


def _incomplete(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n")
    conn.sendall(b"1000\r\n" + JPEG[:100])  # a 4096-byte chunk that stops after 100


def _badgzip(conn):
    body = gzip.compress(JPEG)[:40] + b"garbage-not-deflate" * 20
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


def _svg(conn):
    body = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def _echo_url(conn, path):
    body = path.encode()
    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


ROUTES = {"/drip.jpg": _drip, "/stall.jpg": _stall, "/incomplete.jpg": _incomplete, "/gzip.jpg": _badgzip}
ROUTES["/drawing.svg"] = _svg


@pytest.fixture(scope="module")
def server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()

    def handle(conn):
        with conn:
            data = b""
            first = conn.recv(1, socket.MSG_PEEK)
            if first == b"\x16":  # a TLS ClientHello: answer as a plain HTTP server does
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            path = data.split(b" ")[1].decode()
            try:
                route = ROUTES.get(path.split("?")[0])
                if route:
                    route(conn)
                else:
                    _echo_url(conn, path)
            except OSError:
                pass

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    srv.close()


def test_the_total_deadline_holds_against_a_drip_server(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(DdctlError) as exc:
        download(server + "/drip.jpg", str(tmp_path), deadline=3)
    took = time.monotonic() - started
    assert took < 6, took
    assert "took more than 3 s" in exc.value.message and "DDCTL_DOWNLOAD_TIMEOUT" in exc.value.message


def test_the_deadline_comes_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DDCTL_DOWNLOAD_TIMEOUT", "2")
    started = time.monotonic()
    with pytest.raises(DdctlError, match="took more than 2 s"):
        download(server + "/drip.jpg", str(tmp_path))
    assert time.monotonic() - started < 5


def test_a_stall_after_the_headers_is_not_called_unreachable(server, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "READ_TIMEOUT", 1)
    with pytest.raises(DdctlError) as exc:
        download(server + "/stall.jpg", str(tmp_path))
    msg = exc.value.message
    assert "answered, then stopped sending" in msg and "Cannot reach" not in msg and "network" not in msg


def test_an_incomplete_read_is_one_clear_sentence(server, tmp_path):
    with pytest.raises(DdctlError) as exc:
        download(server + "/incomplete.jpg", str(tmp_path))
    msg = exc.value.message
    assert "was cut off after" in msg and "\n" not in msg
    assert "IncompleteRead(" not in msg and "Connection broken" not in msg


def test_a_broken_gzip_body_is_one_clear_sentence(server, tmp_path):
    with pytest.raises(DdctlError) as exc:
        download(server + "/gzip.jpg", str(tmp_path))
    msg = exc.value.message
    assert "compressed (gzip/deflate) body that does not decode" in msg
    assert "Error -3" not in msg and "zlib" not in msg


def test_https_to_a_plain_http_port_suggests_http(server, tmp_path):
    with pytest.raises(DdctlError) as exc:
        download(server.replace("http://", "https://") + "/x.jpg", str(tmp_path))
    msg = exc.value.message
    assert "does not speak TLS there (WRONG_VERSION_NUMBER)" in msg and "try http://" in msg


def test_an_svg_is_called_a_drawing_not_text(server, tmp_path):
    with pytest.raises(UsageError) as exc:
        download(server + "/drawing.svg", str(tmp_path))
    assert "SVG drawing" in exc.value.message and " is text" not in exc.value.message


def test_a_url_secret_is_never_shown(server, tmp_path):
    url = server.replace("http://", "http://alice:s3cr3tpw@") + "/missing.jpg?token=t0ps3cret&w=800"
    with pytest.raises(UsageError) as exc:
        download(url, str(tmp_path))
    msg = exc.value.message
    assert "s3cr3tpw" not in msg and "t0ps3cret" not in msg and "alice" not in msg
    assert "/missing.jpg?token=***&w=***" in msg and "404" in msg


def test_a_url_secret_is_not_shown_when_the_host_is_unreachable(tmp_path):
    url = "http://bob:hunter22@127.0.0.1:9/p.jpg?sig=abcdef123"
    with pytest.raises(DdctlError) as exc:
        download(url, str(tmp_path))
    msg = exc.value.message
    assert "hunter22" not in msg and "abcdef123" not in msg and "bob" not in msg
    assert "Cannot reach 127.0.0.1" in msg


@pytest.mark.parametrize(
    "url,shown",
    [
        ("http://u:p@h/x.jpg", "http://***@h/x.jpg"),
        ("https://token@h:8443/a/b.png?x=1&y", "https://***@h:8443/a/b.png?x=***&***"),
        ("https://h/x.jpg", "https://h/x.jpg"),
        ("photo.jpg", "photo.jpg"),
        ("http://[::1/p.jpg", "http://[::1/p.jpg"),  # urlsplit refuses it: shown as typed
        ("http://u:pw@[::1/p.jpg?t=x", "http://***@[::1/p.jpg?***"),  # less what could be a secret
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_an_unparseable_url_is_named_in_the_message_without_its_secrets(tmp_path):
    for url, shown in [
        ("http://[::1/p.jpg", "http://[::1/p.jpg"),
        ("http://bob:hunter22@[::1/p.jpg?sig=abcdef", "http://***@[::1/p.jpg?***"),
    ]:
        with pytest.raises(UsageError) as exc:
            download(url, str(tmp_path))
        msg = exc.value.message
        assert msg.startswith(f"{shown} is not a valid address") and "hunter22" not in msg, msg
        assert "abcdef" not in msg


def test_scrub_removes_secrets_quoted_in_other_forms():
    url = "https://h/x.jpg?token=abc%2Fdef"
    text = "HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: /x.jpg?token=abc%2Fdef"
    assert "abc" not in scrub(text, secrets_of(url))


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5", "9999999"])
def test_a_bad_max_download_mb_is_one_sentence_when_used(value):
    with pytest.raises(UsageError) as exc:
        max_download_bytes({"DDCTL_MAX_DOWNLOAD_MB": value})
    assert exc.value.message.startswith(f"DDCTL_MAX_DOWNLOAD_MB={value!r} is not a whole number from 1 to")
    assert "-1000 KB" not in exc.value.message


def test_env_numbers_default_and_parse():
    assert max_download_bytes({}) == 50_000_000
    assert max_download_bytes({"DDCTL_MAX_DOWNLOAD_MB": " 7 "}) == 7_000_000
    assert download_deadline({}) == 300
    with pytest.raises(UsageError, match="DDCTL_DOWNLOAD_TIMEOUT='x'"):
        download_deadline({"DDCTL_DOWNLOAD_TIMEOUT": "x"})


@pytest.mark.parametrize("args", [["--version"], ["doctor", "env"]])
def test_a_bad_env_var_never_breaks_import(args):
    env = dict(os.environ, DDCTL_MAX_DOWNLOAD_MB="abc", DDCTL_DOWNLOAD_TIMEOUT="-1")
    r = subprocess.run(
        [sys.executable, "-m", "ddctl", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert "Traceback" not in r.stderr and r.returncode == 0, r.stderr


def test_a_bad_env_var_is_one_sentence_for_run(tmp_path):
    env = dict(os.environ, DDCTL_MAX_DOWNLOAD_MB="abc", DOCKER_HOST="unix:///nonexistent.sock")
    r = subprocess.run(
        [sys.executable, "-m", "ddctl", "run", "http://127.0.0.1:9/x.jpg", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "DDCTL_MAX_DOWNLOAD_MB='abc' is not a whole number" in r.stderr
