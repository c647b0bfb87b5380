"""Real dockerd processes for the doctor's tests: started here, stopped by their own pid.

Each daemon gets its own data and exec roots under one short temporary folder (unix
socket paths must stay under 108 bytes) and the flags of README "Tests"; the machine's main
dockerd (/var/run/docker.sock) is never touched.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

FLAGS = ["--bridge=none", "--iptables=false", "--ip-masq=false"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dockerd:
    def __init__(self, base, name, hosts, extra=()):
        self.base, self.name = base, name
        self.root = os.path.join(base, name)
        self.data_root = os.path.join(self.root, "data")
        self.sock = os.path.join(base, f"{name}.sock")
        self.pidfile = os.path.join(self.root, "pid")
        self.log = os.path.join(self.root, "log")
        os.makedirs(self.root, exist_ok=True)
        self.args = (
            ["dockerd"]
            + FLAGS
            + [
                "--data-root",
                self.data_root,
                "--exec-root",
                os.path.join(self.root, "x"),
                "--pidfile",
                self.pidfile,
                "-H",
                "unix://" + self.sock,
            ]
            + [a for h in hosts for a in ("-H", h)]
            + list(extra)
        )
        self.proc = None

    def start(self):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def answers(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        try:
            s.connect(self.sock)
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in s.recv(1024)
        except OSError:
            return False
        finally:
            s.close()

    def wait(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd {self.name} exited: {self.tail()}")
            if self.answers():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"dockerd {self.name} did not answer in {timeout} s: {self.tail()}")

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-15:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # our own pid only
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def cleanup(base):
    shutil.rmtree(base, ignore_errors=True)
