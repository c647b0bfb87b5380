"""The exchange: a small HTTP server that dream tasks reach over the batch's internal network.

It runs as a swarm service on the manager node, inside the dream image (its Python 3.9
and standard library only: this file never imports ddctl and is sent as `python3 -I -c`).
ddctl fills and empties its folder through the Engine API's archive calls, never over the
network; tasks use HTTP:

  GET  /job/<round>/<slot>      the picture of that task: {"pid", "filename", "args"}
  GET  /input/<pid>             the picture's bytes
  GET  /done/<pid>              200 when that picture already has its result, else 404
  PUT  /upload/<pid>/<task>/<relative path>    one result file of one attempt
  POST /commit/<pid>/<task>     {"status": "done"|"failed", ...}: the first commit of a
                                picture wins (its files move to out/<pid>, done/<pid>.json
                                is written); any later one gets 409 and is dropped.

Layout under ROOT (a volume): jobs/<pid>/meta.json and the picture, rounds/<round>.json
(pid of each slot), tmp/<pid>-<task>/ (uploads in progress), out/<pid>/ (results),
done/<pid>.json (written last: ddctl polls this folder).
"""

import json
import os
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

ROOT = os.environ.get("DDCTL_EXCHANGE_ROOT", "/images")
PORT = int(os.environ.get("DDCTL_EXCHANGE_PORT", "8000"))
MAX_UPLOAD = 512 * 1024 * 1024
COMMIT_LOCK = threading.Lock()


def _safe_parts(parts):
    return all(p not in (".", "..") and "/" not in p and "\\" not in p and "\0" not in p for p in parts)


def _write_atomic(path, data):
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def commit(root, pid, task, record):
    """Make `record` the result of picture `pid` unless one exists; True if this one won."""
    with COMMIT_LOCK:
        done = os.path.join(root, "done", pid + ".json")
        staged = os.path.join(root, "tmp", f"{pid}-{task}")
        if os.path.exists(done):
            shutil.rmtree(staged, ignore_errors=True)
            return False
        os.makedirs(os.path.join(root, "done"), exist_ok=True)
        os.makedirs(os.path.join(root, "out"), exist_ok=True)
        if record.get("status") == "done" and os.path.isdir(staged):
            os.rename(staged, os.path.join(root, "out", pid))
        else:
            shutil.rmtree(staged, ignore_errors=True)
        record = dict(record, pid=pid, task=task)
        _write_atomic(done, json.dumps(record).encode())
        return True


class Handler(BaseHTTPRequestHandler):
    root = ROOT
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one short line per request on stderr
        sys.stderr.write("exchange: " + (fmt % args) + "\n")

    def _send(self, code, body=b"", ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _parts(self):
        parts = [unquote(p) for p in self.path.split("?")[0].split("/") if p]
        return parts if _safe_parts(parts) else None

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_UPLOAD:
            raise ValueError("too large")
        return self.rfile.read(n)

    def do_GET(self):
        p = self._parts()
        try:
            if p and p[0] == "job" and len(p) == 3:
                with open(os.path.join(self.root, "rounds", p[1] + ".json")) as f:
                    pids = json.load(f)
                pid = pids[int(p[2])]
                with open(os.path.join(self.root, "jobs", pid, "meta.json"), "rb") as f:
                    return self._send(200, f.read())
            if p and p[0] == "input" and len(p) == 2:
                with open(os.path.join(self.root, "jobs", p[1], "meta.json")) as f:
                    meta = json.load(f)
                with open(os.path.join(self.root, "jobs", p[1], meta["filename"]), "rb") as f:
                    return self._send(200, f.read(), "application/octet-stream")
            if p and p[0] == "done" and len(p) == 2:
                exists = os.path.exists(os.path.join(self.root, "done", p[1] + ".json"))
                return self._send(200 if exists else 404)
        except (OSError, ValueError, IndexError, KeyError):
            return self._send(404)
        return self._send(404)

    def do_PUT(self):
        p = self._parts()
        if not p or p[0] != "upload" or len(p) < 4:
            return self._send(404)
        try:
            data = self._body()
        except ValueError:
            return self._send(413)
        target = os.path.join(self.root, "tmp", f"{p[1]}-{p[2]}", *p[3:])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _write_atomic(target, data)
        return self._send(201)

    def do_POST(self):
        p = self._parts()
        if not p or p[0] != "commit" or len(p) != 3:
            return self._send(404)
        try:
            record = json.loads(self._body() or b"{}")
        except ValueError:
            return self._send(400)
        won = commit(self.root, p[1], p[2], record)
        return self._send(201 if won else 409)


def main():
    for sub in ("jobs", "rounds", "tmp", "out", "done"):
        os.makedirs(os.path.join(ROOT, sub), exist_ok=True)
    server = ThreadingHTTPServer(("", PORT), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"exchange: serving {ROOT} on port {PORT}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
