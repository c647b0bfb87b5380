"""What a user sees from the CLI without any daemon."""

import subprocess
import sys

import pytest

from ddctl import __version__
from ddctl.cli import main


def ddctl(*args, env=None):
    import os

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "ddctl", *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def test_version_and_help_list_the_commands():
    r = ddctl("--version")
    assert r.returncode == 0 and __version__ in r.stdout
    r = ddctl("--help")
    for cmd in ("doctor", "build", "run", "layers"):
        assert cmd in r.stdout


@pytest.mark.parametrize("command", ["build", "layers"])
def test_a_daemon_that_is_not_there_is_one_sentence_without_traceback(command):
    r = ddctl(command, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "unix:///nonexistent/docker.sock" in lines[0] and "ddctl doctor" in lines[0]


def test_debug_shows_the_traceback():
    r = ddctl("--debug", "layers", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_no_command_prints_help_and_fails():
    assert main([]) == 2
