"""Issue 9 item 8/9: what a wrong DOCKER_HOST gets called (real sockets on 127.0.0.1)."""

import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><body>a web server, not Docker</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_HEAD = do_GET

    def log_message(self, *a):
        pass


@pytest.fixture
def web_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def ddctl(*args, host):
    env = dict(os.environ, DOCKER_HOST=host)
    for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        env.pop(k, None)
    return subprocess.run(
        [sys.executable, "-m", "ddctl", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_a_web_server_at_docker_host_is_named_once(web_server):
    r = ddctl("layers", host=web_server)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "Expecting value" not in r.stderr
    assert r.stderr.count("is not a Docker daemon") == 1


def test_a_refused_tcp_port_is_not_called_a_stale_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    r = ddctl("layers", host=f"tcp://127.0.0.1:{port}")
    assert r.returncode != 0
    assert "stale socket" not in r.stderr and "the connection was refused" in r.stderr
