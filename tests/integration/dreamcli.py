"""The dream commands run as a user runs them, for the end-to-end tests (test_build_run.py,
test_zoom_sheet.py, test_big.py): the CLI in a subprocess, every container it creates
labelled with the test's own `io.ddctl.testcase=<tag>` (the `tag` fixture of conftest.py),
the daemon's own records of what was created, and the pictures the tests dream on.

A helper module, imported by name: never `from conftest import` (tests/integration/swarm
has a conftest of its own, and which one that finds depends on the order of collection).
"""

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
from dockertest import TEST_LABELS_ENV
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def env_for(tag, **more):
    """The variables that label what ddctl creates for the test `tag` (on top of os.environ)."""
    return {"DDCTL_LABELS": f"{TEST_LABELS_ENV},io.ddctl.testcase={tag}", **more}


def full_env(env=None):
    """os.environ without DDCTL_TRANSFER (each test says how files travel), plus env."""
    full = {k: v for k, v in os.environ.items() if k != "DDCTL_TRANSFER"}
    full.update(env or {})
    return full


def ddctl(*args, tag=None, env=None, cwd=None, timeout=600):
    """`python -m ddctl ARGS` to the end: a CompletedProcess with text stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "ddctl", *args],
        capture_output=True,
        text=True,
        env=full_env({**(env_for(tag) if tag else {}), **(env or {})}),
        cwd=cwd or ROOT,
        timeout=timeout,
    )


class StderrReader:
    """The stderr lines of a running ddctl, read by a thread so that a deadline is real (a
    readline() on the pipe would block past it)."""

    def __init__(self, proc):
        self.proc = proc
        self.seen: list = []
        self._lines: queue.Queue = queue.Queue()
        self._thread = threading.Thread(
            target=lambda: [self._lines.put(x) for x in iter(proc.stderr.readline, "")], daemon=True
        )
        self._thread.start()

    def wait_for(self, ready, timeout):
        """Block until a line starting with `ready` came; fail the test if ddctl ended first or
        `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith(ready) for line in self.seen):
            if self.proc.poll() is not None and self._lines.empty():
                pytest.fail(f"ddctl ended (exit {self.proc.returncode}) before `{ready}`:\n" + self.text())
            try:
                self.seen.append(self._lines.get(timeout=max(0.1, min(1.0, deadline - time.monotonic()))))
            except queue.Empty:
                if time.monotonic() > deadline:
                    pytest.fail(f"no `{ready}` line within {timeout} s:\n" + self.text())

    def rest(self):
        """Every line, once ddctl has ended."""
        self._thread.join(timeout=10)
        while not self._lines.empty():
            self.seen.append(self._lines.get_nowait())
        return self.text()

    def text(self):
        return "".join(self.seen)


def popen(args, env):
    """`python -m ddctl ARGS` started with pipes for stdout and stderr, in the checkout."""
    return subprocess.Popen(
        [sys.executable, "-m", "ddctl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def interrupt_after(args, ready, tag, timeout=300, while_running=None, sig=signal.SIGINT, env=None):
    """Run `ddctl ARGS`, wait (really: at most `timeout` s) for a stderr line starting with
    `ready`, call while_running(proc), then send `sig` (Ctrl-C's SIGINT by default).
    -> (exit code, stdout, stderr)."""
    proc = popen(args, env or full_env(env_for(tag)))
    reader = StderrReader(proc)
    try:
        reader.wait_for(ready, timeout)
        if while_running is not None:
            while_running(proc)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        out = proc.stdout.read()
        err = reader.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def containers_of(docker_client, tag):
    """The containers of the test `tag` that exist now, running or not."""
    return docker_client.containers.list(all=True, filters={"label": f"io.ddctl.testcase={tag}"})


def created_containers(docker_client, tag, since):
    """The IDs of the containers created for the test `tag` since `since` (the daemon's events)."""
    events = docker_client.events(
        since=since,
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": "create", "label": f"io.ddctl.testcase={tag}"},
    )
    return [e["id"] for e in events]


def mandelbrot(size=(200, 150), shift=0.0, iterations=60):
    """A picture with structure (a Mandelbrot set, RGB); `shift` moves the view, so that
    pictures made with different shifts differ."""
    return Image.effect_mandelbrot(size, (-2 + shift, -1.2, 1, 1.2), iterations).convert("RGB")


def write_pictures(folder, n, size=(120, 90)):
    """folder/p0.jpg ... p<n-1>.jpg, each a different picture."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        mandelbrot(size, 0.1 * i, 40).save(str(folder / f"p{i}.jpg"), "JPEG")
