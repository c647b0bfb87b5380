"""The doctor's pure parts: shell formats, certificate checks, check ordering and skips,
group advice. No daemon needed."""

import datetime
import os
import sys
import types

import pytest

from ddctl.doctor import certs, shellenv
from ddctl.doctor.checks import CHECKS, engine_identity, group_advice, split_host, tls_from_env
from ddctl.doctor.result import FAIL, OK, SKIPPED, WARN, CheckResult
from ddctl.doctor.runner import Check, Context, exit_code, run_checks, summarize

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import doctor_certs as dc

# ---------------------------------------------------------------- shell formats
SETTINGS = [
    ("DOCKER_HOST", "tcp://192.168.59.103:2376"),
    ("DOCKER_TLS_VERIFY", "1"),
    ("DOCKER_CERT_PATH", "/home/me/.docker/machine/machines/dev"),
    ("DOCKER_CONTEXT", None),
]


@pytest.mark.parametrize(
    "shell, first, unset, tail",
    [
        (
            "bash",
            'export DOCKER_HOST="tcp://192.168.59.103:2376"',
            "unset DOCKER_CONTEXT",
            '# eval "$(ddctl doctor env)"',
        ),
        (
            "zsh",
            'export DOCKER_HOST="tcp://192.168.59.103:2376"',
            "unset DOCKER_CONTEXT",
            '# eval "$(ddctl doctor env)"',
        ),
        (
            "fish",
            'set -gx DOCKER_HOST "tcp://192.168.59.103:2376";',
            "set -e DOCKER_CONTEXT;",
            "# eval (ddctl doctor env)",
        ),
        (
            "powershell",
            '$Env:DOCKER_HOST = "tcp://192.168.59.103:2376"',
            "Remove-Item Env:\\DOCKER_CONTEXT",
            "# & ddctl doctor env | Invoke-Expression",
        ),
        ("cmd", "SET DOCKER_HOST=tcp://192.168.59.103:2376", "SET DOCKER_CONTEXT=", "REM @FOR /f"),
    ],
)
def test_each_shell_gets_its_own_syntax_and_the_eval_comment(shell, first, unset, tail):
    lines = shellenv.render(shell, SETTINGS).splitlines()
    assert lines[0] == first
    assert lines[3].startswith(unset)
    assert lines[-2].endswith("Run this command to configure your shell:")
    assert lines[-1].startswith(tail)


def test_values_are_quoted_so_the_shell_cannot_expand_them():
    assert shellenv.set_line("bash", "X", 'a"$b`c\\') == 'export X="a\\"\\$b\\`c\\\\"'
    assert shellenv.set_line("fish", "X", 'a"$b') == 'set -gx X "a\\"\\$b";'
    assert shellenv.set_line("powershell", "X", 'a"$b') == '$Env:X = "a`"`$b"'


def test_bash_lines_really_set_and_unset_in_bash(tmp_path):
    import subprocess

    text = shellenv.render("bash", [("DOCKER_HOST", 'unix:///tmp/we ird"$x.sock'), ("DOCKER_CONTEXT", None)])
    r = subprocess.run(
        ["bash", "-c", text + '\necho "$DOCKER_HOST|${DOCKER_CONTEXT-unset}"'],
        env={"DOCKER_CONTEXT": "c", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == 'unix:///tmp/we ird"$x.sock|unset'


@pytest.mark.parametrize(
    "shell_var, expected",
    [
        ("/bin/bash", "bash"),
        ("/usr/bin/zsh", "zsh"),
        ("/usr/local/bin/fish", "fish"),
        ("/usr/bin/pwsh", "powershell"),
        ("/bin/dash", "bash"),
        ("", "bash" if os.name != "nt" else "powershell"),
    ],
)
def test_the_shell_comes_from_SHELL(shell_var, expected):
    assert shellenv.detect_shell({"SHELL": shell_var}) == expected


def test_settings_for_plain_and_tls_endpoints():
    plain = dict(shellenv.settings_for("http+unix:///run/x.sock", None, {"DOCKER_CONTEXT": "c"}))
    assert plain == {
        "DOCKER_HOST": "unix:///run/x.sock",
        "DOCKER_TLS_VERIFY": None,
        "DOCKER_CERT_PATH": None,
        "DOCKER_CONTEXT": None,
    }
    tls = dict(shellenv.settings_for("https://10.0.0.5:2376", {"verify": True, "dir": "/c"}, {}))
    assert tls == {"DOCKER_HOST": "tcp://10.0.0.5:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/c"}


def test_tls_from_env_follows_docker_py():
    assert tls_from_env({}) is None
    assert tls_from_env({"DOCKER_TLS_VERIFY": ""}) is None
    t = tls_from_env({"DOCKER_TLS_VERIFY": "0", "DOCKER_CERT_PATH": "/c"})  # any value but "" verifies
    assert t["verify"] is True and t["ca"] == "/c/ca.pem"
    assert tls_from_env({"DOCKER_CERT_PATH": "/c"})["verify"] is False


def test_split_host():
    assert split_host("unix:///var/run/docker.sock") == ("unix", "/var/run/docker.sock")
    assert split_host("tcp://127.0.0.2:2376") == ("tcp", ("127.0.0.2", 2376))
    assert split_host("https://h") == ("tcp", ("h", 2376))


# ---------------------------------------------------------------- certificates
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return dc.make_pki(str(tmp_path_factory.mktemp("pki")))


def files(d):
    return os.path.join(d, "ca.pem"), os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")


def test_good_client_files_have_no_problem(pki):
    assert certs.check_client_files(*files(pki["good"])) == []


def test_expired_and_soon_expiring_certificates(pki):
    problems = certs.check_client_files(*files(pki["expired"]))
    assert problems[0][0] == "fail" and "cert.pem expired on" in problems[0][1]
    later = certs.now() + datetime.timedelta(days=350)
    soon = certs.check_client_files(*files(pki["good"]), at=later)
    end = certs.not_after(certs.load_cert(files(pki["good"])[1]))
    assert 0 < (end - later).days < 30  # the test certificate is valid for about a year
    assert ("warn", f"cert.pem expires on {end:%Y-%m-%d}, in {(end - later).days} days") in soon
    assert all(s == "warn" for s, _ in soon)


def test_a_key_of_another_certificate_and_a_foreign_ca(pki, tmp_path):
    ca, cert, _ = files(pki["good"])
    _, _, other_key = files(pki["expired"])
    assert any("not the key of cert.pem" in p for _, p in certs.check_client_files(ca, cert, other_key))
    foreign, fkey = dc.make_ca("someone else")
    dc.write_set(str(tmp_path), foreign, foreign, fkey)
    assert any(
        "not issued by ca.pem" in p for _, p in certs.check_client_files(str(tmp_path / "ca.pem"), cert, None)
    )


def test_a_server_certificate_is_not_a_client_certificate(pki):
    ca, cert, key = files(pki["server"])
    assert any("clientAuth" in p for _, p in certs.check_client_files(ca, cert, key))


def test_missing_and_garbage_files(pki, tmp_path):
    ca, cert, key = files(pki["good"])
    (tmp_path / "cert.pem").write_text("<html>not a certificate</html>")
    probs = [
        p for _, p in certs.check_client_files(str(tmp_path / "nope.pem"), str(tmp_path / "cert.pem"), key)
    ]
    assert any("missing" in p for p in probs) and any("cannot be read as PEM" in p for p in probs)


def test_san_names_and_matching(pki):
    cert = certs.load_cert(os.path.join(pki["server"], "cert.pem"))
    ips, names = certs.server_names(cert)
    assert ips == ["127.0.0.2"] and names == []
    assert certs.name_matches("127.0.0.2", ips, names) and not certs.name_matches("127.0.0.1", ips, names)
    assert certs.name_matches("a.example.org", [], ["*.example.org"])
    assert not certs.name_matches("example.org", [], ["*.example.org"])


# ---------------------------------------------------------------- runner
def test_a_check_whose_prerequisite_failed_is_skipped_with_the_reason():
    seen = []

    def make(name, status):
        def f(ctx):
            seen.append(name)
            return CheckResult(name, status, f"{name} says {status}")

        return f

    checks = [
        Check("a", "A", make("a", FAIL)),
        Check("b", "B", make("b", OK), ("a",)),
        Check("c", "C", make("c", OK), ("b",)),
        Check("d", "D", make("d", SKIPPED)),
        Check("e", "E", make("e", WARN), ("d",)),
    ]
    results = run_checks(checks, Context(env={}))
    assert seen == ["a", "d", "e"]  # b and c never ran
    by = {r.name: r for r in results}
    assert by["b"].status == SKIPPED and by["b"].detail == "needs A, which failed"
    assert by["c"].detail == "needs B, which was skipped"
    assert by["e"].status == WARN  # a not-applicable skip blocks nothing
    assert summarize(results) == {OK: 0, WARN: 1, FAIL: 1, SKIPPED: 3} and exit_code(results) == 1


def test_a_crashing_check_is_a_failure_not_a_traceback():
    def boom(ctx):
        raise RuntimeError("bug")

    (r,) = run_checks([Check("x", "X", boom)], Context(env={}))
    assert r.status == FAIL and "crashed" in r.detail


def test_the_checks_are_ordered_so_that_prerequisites_come_first():
    names = [c.name for c in CHECKS]
    for i, c in enumerate(CHECKS):
        assert all(names.index(r) < i for r in c.requires), c.name


# ---------------------------------------------------------------- groups and engines
def st(gid, mode=0o140660):
    return types.SimpleNamespace(st_gid=gid, st_uid=0, st_mode=mode)


def fake_db(members):
    return (
        lambda gid: types.SimpleNamespace(gr_name="docker", gr_mem=members),
        lambda uid: types.SimpleNamespace(pw_name="ann", pw_gid=1000),
    )


def test_in_the_group_but_not_in_this_login():
    g, p = fake_db(["ann"])
    why, hint = group_advice(st(999), uid=1000, login_groups=[1000], getgrgid=g, getpwuid=p)
    assert "in the docker group but not in this login" in why and "newgrp docker" in hint


def test_not_in_the_group_at_all():
    g, p = fake_db([])
    why, hint = group_advice(st(999), uid=1000, login_groups=[1000], getgrgid=g, getpwuid=p)
    assert "ann is not in that group" in why and "usermod -aG docker ann" in hint


def test_engine_identity():
    assert engine_identity({}, {"OperatingSystem": "Docker Desktop"}) == "Docker Desktop"
    assert engine_identity({"Components": [{"Name": "Podman Engine"}]}, {}) == "Podman"
    assert engine_identity({}, {"OperatingSystem": "Boot2Docker 19.03.12 (TCL 10.1)"}) == "boot2docker"
    assert engine_identity({}, {"SecurityOptions": ["name=seccomp", "name=rootless"]}) == "rootless Docker"
    assert engine_identity({}, {"OperatingSystem": "OrbStack"}) == "OrbStack"
    assert engine_identity({}, {"OperatingSystem": "Debian GNU/Linux 12"}).startswith("Docker Engine")
