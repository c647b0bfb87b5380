"""Issue 9 item 9: the doctor's gaps, as a user sees them (no daemon needed)."""

import json
import os
import subprocess
import sys


def ddctl(*args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ddctl", *args], capture_output=True, text=True, env=full, timeout=120
    )


def row(report, name):
    (r,) = [c for c in report["checks"] if c["name"] == name]
    return r


def test_tls_variables_with_a_unix_socket_are_flagged(tmp_path):
    r = ddctl(
        "doctor",
        "--json",
        DOCKER_HOST="unix:///nonexistent/docker.sock",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=str(tmp_path),
        DOCKER_CONFIG=str(tmp_path),
    )
    endpoint = row(json.loads(r.stdout), "endpoint")
    assert endpoint["status"] == "warn"
    assert "local socket, which never uses TLS" in endpoint["detail"]
    assert endpoint["hint"] == "`unset DOCKER_TLS_VERIFY DOCKER_CERT_PATH`"


def test_fix_of_a_missing_context_from_the_environment_says_it_cannot(tmp_path):
    r = ddctl("doctor", "--fix", DOCKER_CONTEXT="nosuch", DOCKER_CONFIG=str(tmp_path))
    out = r.stdout + r.stderr
    assert "could not unset DOCKER_CONTEXT" in out and "unset DOCKER_CONTEXT` yourself" in out


def test_doctor_env_prints_its_eval_hint_once(tmp_path):
    r = ddctl("doctor", "env", "--shell", "bash", DOCKER_HOST="unix:///nonexistent/docker.sock")
    both = r.stdout + r.stderr
    assert both.count("Run this command to configure your shell") == 1
    assert both.count('eval "$(ddctl doctor env') == 1
