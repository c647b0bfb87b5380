"""Real dockerd processes for the doctor's tests: started here, stopped by their own pid.

Each daemon gets its own data and exec roots under one short temporary folder (unix
socket paths must stay under 108 bytes) and the flags of README "Tests"; the machine's main
dockerd (/var/run/docker.sock) is never touched.

`doctor_lab()` is the set-up test_doctor.py and test_doctor_security.py share (a folder,
certificates, the module's daemons started and awaited, a clean HOME and DOCKER_CONFIG),
and `doctor()` runs the CLI there as a user would, in JSON and as text.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from doctor_certs import make_pki

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCREEN = 40  # the doctor's text must fit one screen

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


def unavailable(why):
    """Skip, or fail under CI=true: a green CI that skipped the doctor's daemons is not green."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the doctor's daemons cannot run: {why}")
    pytest.skip(why)


def tls_flags(server_pki):
    """dockerd's flags for TLS with client verification, from make_pki()'s server folder."""
    return [
        "--tlsverify",
        "--tlscacert",
        f"{server_pki}/ca.pem",
        "--tlscert",
        f"{server_pki}/cert.pem",
        "--tlskey",
        f"{server_pki}/key.pem",
    ]


class Lab:
    """What a doctor test module has: base (the folder), pki, home, cfg and its daemons."""


@contextlib.contextmanager
def doctor_lab(prefix, make_daemons, server_ips=("127.0.0.2",)):
    """A Lab whose daemons (make_daemons(lab) -> [Dockerd], which sets them on lab) answer;
    everything stopped by pid and removed after. Needs root and dockerd (else unavailable)."""
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        unavailable("starting test daemons needs root and dockerd (Debian's docker.io)")
    base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(base, 0o755)  # the unprivileged user must reach the sockets to be refused by them
    lab = Lab()
    lab.base = base
    lab.pki = make_pki(os.path.join(base, "c"), server_ips=server_ips)
    daemons = make_daemons(lab)
    try:
        for d in daemons:
            d.start()
        for d in daemons:
            d.wait()
    except Exception as exc:
        for d in daemons:
            d.stop()
        cleanup(base)
        unavailable(f"a test dockerd did not start: {exc}")
    lab.home = os.path.join(base, "home")
    lab.cfg = os.path.join(base, "cfg")
    os.makedirs(lab.home)
    os.makedirs(lab.cfg)
    try:
        yield lab
    finally:
        for d in daemons:
            d.stop()
        cleanup(base)


def clean_env(lab, **extra):
    """The environment of a user of the lab: no DOCKER_* of ours, the lab's HOME and
    DOCKER_CONFIG; `extra` on top (None: left out)."""
    # CA bundle variables make requests replace ca.pem (a test of its own in test_doctor.py)
    drop = ("SHELL", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_") and k not in drop}
    env.update(
        HOME=lab.home,
        DOCKER_CONFIG=lab.cfg,
        XDG_RUNTIME_DIR=os.path.join(lab.base, "run"),
        PYTHONPATH=ROOT,
        COLUMNS="100",
        NO_COLOR="1",
    )
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def run_doctor(lab, *args, user=None, **env):
    """`ddctl doctor ARGS` in the lab's clean environment (as nobody with user="nobody")."""
    pre = []
    if user == "nobody":
        # nobody cannot read root's Python otherwise; CAP_DAC_READ_SEARCH reads files but
        # gives no write access, and connecting to a unix socket needs write access.
        pre = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
        ]
    return subprocess.run(
        pre + [sys.executable, "-m", "ddctl", "doctor", *args],
        env=clean_env(lab, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def doctor(lab, *args, user=None, **env):
    """(exit code, {name: check} from --json, text) of `ddctl doctor ARGS`; both forms agree
    on the exit code and the text fits one screen."""
    j = run_doctor(lab, *args, "--json", user=user, **env)
    t = run_doctor(lab, *args, user=user, **env)
    assert j.returncode == t.returncode, (j.stderr, t.stderr)
    doc = json.loads(j.stdout)
    assert doc["exit_code"] == j.returncode
    assert len(t.stdout.splitlines()) <= SCREEN, t.stdout
    return j.returncode, {c["name"]: c for c in doc["checks"]}, t.stdout
