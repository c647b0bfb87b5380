"""Endpoint resolution and error sentences, with the SDK's own exceptions."""

import errno
import json

import pytest
import requests
from docker.errors import DockerException

from ddctl.client import Endpoint, explain, handle_connection_errors, resolve_endpoint
from ddctl.errors import DockerUnavailable

EP = Endpoint(host="unix:///var/run/docker.sock", source="default")


def wrapped(inner):
    """The SDK raises DockerException('Error while fetching server API version: ...') from the cause."""
    try:
        try:
            raise inner
        except Exception as e:
            raise DockerException(f"Error while fetching server API version: {e}") from e
    except DockerException as outer:
        return outer


@pytest.mark.parametrize(
    "inner, words",
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), "socket does not exist"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "nothing is listening"),
        (PermissionError(errno.EACCES, "Permission denied"), "docker` group"),
        (
            requests.exceptions.ConnectionError("('Connection aborted.', ConnectionResetError(104))"),
            "not answering",
        ),
    ],
)
def test_connection_failures_become_one_sentence_with_a_next_step(inner, words):
    text = explain(wrapped(inner), EP)
    assert words in text and "ddctl doctor" in text and "\n" not in text


def test_plain_http_to_a_tls_port_and_the_reverse_are_told_apart():
    a = explain(
        wrapped(
            requests.exceptions.ConnectionError(
                "400 Client Error: Bad Request (Client sent an HTTP request to an HTTPS server.)"
            )
        ),
        EP,
    )
    b = explain(wrapped(requests.exceptions.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version number")), EP)
    assert "DOCKER_TLS_VERIFY=1" in a and "plain HTTP but ddctl spoke TLS" in b


def test_the_boundary_raises_the_sentence_naming_the_endpoint_in_effect(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere/docker.sock")
    with pytest.raises(DockerUnavailable) as info:
        with handle_connection_errors():
            raise wrapped(FileNotFoundError(errno.ENOENT, "x"))
    assert "unix:///nowhere/docker.sock" in str(info.value) and "socket does not exist" in str(info.value)


def _write_context(cfgdir, name, host):
    import hashlib

    meta = cfgdir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps(
            {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}
        )
    )


def test_endpoint_order_follows_the_docker_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    for v in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(v, raising=False)
    assert resolve_endpoint().source == "default"
    _write_context(tmp_path, "colima", "unix:///tmp/colima.sock")
    _write_context(tmp_path, "other", "tcp://127.0.0.1:2375")
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "colima"}))
    ep = resolve_endpoint()
    assert (ep.host, ep.context) == ("unix:///tmp/colima.sock", "colima")
    monkeypatch.setenv("DOCKER_CONTEXT", "other")
    assert resolve_endpoint().host == "tcp://127.0.0.1:2375"
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/x.sock")
    ep = resolve_endpoint()
    assert ep.source == "DOCKER_HOST" and ep.conflicts and "DOCKER_CONTEXT" in ep.conflicts[0]


def test_a_missing_context_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    with pytest.raises(DockerUnavailable, match="'nope'.*does not exist"):
        resolve_endpoint()
