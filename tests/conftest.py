"""Shared test set-up. Unit tests need nothing; integration tests need a real dockerd.

`http_server` is the one HTTP test server: real HTTP on 127.0.0.1 in a thread, serving
fixed routes (pictures for ddctl and the engine to fetch, weights for image builds).
"""

import http.server
import os
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


class StaticServer:
    """Serves `routes` {path: (status, headers, body)} on http://127.0.0.1:PORT (`.url`).

    A body alone stands for (200, {}, body). Content-Length is sent unless the route's
    headers set it (None: send none, the body is streamed until the connection closes).
    Unknown paths answer 404. `routes` may be changed while it runs.
    """

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                status, headers, body = route if isinstance(route, tuple) else (200, {}, route)
                self.send_response(status)
                for k, v in headers.items():
                    if v is not None:
                        self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def http_server():
    """A factory: http_server(routes) -> a running StaticServer, closed at the session's end."""
    servers = []

    def start(routes=None):
        servers.append(StaticServer(routes))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
