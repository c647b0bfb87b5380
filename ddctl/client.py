"""The one place where ddctl makes a Docker client and turns SDK failures into sentences.

Core functions let SDK errors propagate; `handle_connection_errors()` turns them into one
DockerUnavailable sentence once, around the whole command (ddctl/cli.py, like docker
compose 1.x's perform_command + errors.handle_connection_errors). The doctor words what
it finds with `explain()` itself.

Which endpoint is used follows the docker CLI's order, which docker-py 7.1 only partly
follows (it ignores contexts): DOCKER_HOST, then DOCKER_CONTEXT, then the config file's
currentContext, then the platform default. `resolve_endpoint()` says which one won and
why, so that the doctor and the error messages can name it.
"""

import contextlib
import errno
import json
import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Optional

import docker
import requests
import urllib3
from docker.context import ContextAPI
from docker.context.config import get_current_context_name
from docker.errors import APIError, DockerException, TLSParameterError

from ddctl.errors import DdctlError, DockerUnavailable, one_line

DEFAULT_HOST = "unix:///var/run/docker.sock"
DOCTOR_HINT = "Try `ddctl doctor`."
# What the SDK raises when Docker cannot be reached or refuses (requests and urllib3 for
# the transport, ConnectionError for a socket cut while streaming).
DOCKER_ERRORS = (
    DockerException,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
)


@dataclass
class Endpoint:
    """Where ddctl will talk to Docker, and why there."""

    host: str  # e.g. unix:///var/run/docker.sock, tcp://127.0.0.1:2376
    source: str  # DOCKER_HOST | DOCKER_CONTEXT | config currentContext | default
    context: Optional[str] = None
    tls: object = None  # docker.tls.TLSConfig, or None for plain
    conflicts: list = field(default_factory=list)  # sentences about ignored settings

    @property
    def is_local_socket(self) -> bool:
        return self.host.startswith(("unix://", "npipe://"))


def _context_endpoint(name: str, source: str) -> Endpoint:
    try:
        ctx = ContextAPI.get_context(name)
    except Exception as exc:  # the SDK raises bare Exceptions for broken metadata
        raise DockerUnavailable(
            f"The docker context {name!r} ({source}) cannot be read: {exc}. {DOCTOR_HINT}"
        )
    if ctx is None:
        raise DockerUnavailable(
            f"The docker context {name!r} named by {source} does not exist: "
            f"run `docker context ls`, or unset it. {DOCTOR_HINT}"
        )
    host = ctx.Host or DEFAULT_HOST
    return Endpoint(host=host, source=source, context=name, tls=ctx.TLSConfig)


def resolve_endpoint(env: Optional[Mapping[str, str]] = None) -> Endpoint:
    """Return the Endpoint in effect for this environment (no network traffic)."""
    env = os.environ if env is None else env
    conflicts = []
    if env.get("DOCKER_HOST"):
        if env.get("DOCKER_CONTEXT"):
            conflicts.append(f"DOCKER_CONTEXT={env['DOCKER_CONTEXT']} is ignored because DOCKER_HOST is set")
        try:
            kwargs = docker.utils.kwargs_from_env(environment=env)
        except TLSParameterError as exc:
            raise DockerUnavailable(
                f"The TLS files for DOCKER_HOST={env['DOCKER_HOST']} are unusable ({exc}). {DOCTOR_HINT}"
            )
        except DockerException as exc:
            raise DockerUnavailable(f"DOCKER_HOST={env['DOCKER_HOST']} is unusable: {exc}. {DOCTOR_HINT}")
        return Endpoint(
            host=kwargs["base_url"], source="DOCKER_HOST", tls=kwargs.get("tls"), conflicts=conflicts
        )
    if env.get("DOCKER_CONTEXT"):
        ep = _context_endpoint(env["DOCKER_CONTEXT"], "DOCKER_CONTEXT")
    else:
        name = get_current_context_name()
        if name and name != "default":
            ep = _context_endpoint(name, "the current docker context (docker context use)")
        else:
            return Endpoint(host=DEFAULT_HOST, source="default")
    ep.conflicts = conflicts
    return ep


def make_client(endpoint: Optional[Endpoint] = None, timeout: float = 60) -> docker.DockerClient:
    """A docker.DockerClient for the endpoint in effect (it asks the daemon its API version).

    SDK errors propagate (DOCKER_ERRORS); the CLI's boundary or the doctor words them.
    """
    ep = endpoint or resolve_endpoint()
    if not _ca_file(ep.tls):
        # version=None: negotiate the API version with the daemon, like the docker CLI.
        return docker.DockerClient(base_url=ep.host, tls=ep.tls or False, version=None, timeout=timeout)
    # With a ca.pem, requests would still let REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace
    # it on every request ("unable to get local issuer certificate"): the daemon's CA is
    # what the user asked for, so the environment's bundles are not consulted. The SDK
    # negotiates the API version before we could say so: ask the daemon ourselves first.
    probe = docker.APIClient(
        base_url=ep.host, tls=ep.tls, timeout=timeout, version=docker.constants.DEFAULT_DOCKER_API_VERSION
    )
    probe.trust_env = False
    try:
        server = probe.version(api_version=False).get("ApiVersion")
    finally:
        probe.close()
    version = min(
        server or docker.constants.DEFAULT_DOCKER_API_VERSION,
        docker.constants.DEFAULT_DOCKER_API_VERSION,
        key=api_version_key,
    )
    client = docker.DockerClient(base_url=ep.host, tls=ep.tls, timeout=timeout, version=version)
    client.api.trust_env = False
    return client


def api_version_key(version: object) -> tuple[int, ...]:
    """'1.41' -> (1, 41), for comparing Docker API versions ('?' -> ())."""
    return tuple(int(x) for x in str(version).split(".") if x.isdigit())


def _ca_file(tls: object) -> Optional[str]:
    """The CA file a TLSConfig verifies the daemon with, if any."""
    ca = getattr(tls, "ca_cert", None) if tls else None
    return ca if isinstance(ca, str) and getattr(tls, "verify", False) else None


def _chain(exc: Optional[BaseException]) -> list[BaseException]:
    """exc and every exception it was raised from, outermost first."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def explain(exc: BaseException, ep: Optional[Endpoint] = None) -> str:
    """One sentence saying what went wrong talking to `ep.host` (default: the endpoint in
    effect) and what to do next."""
    ep = ep or _endpoint_for_words()
    where = ep.host
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    for e in chain:
        if isinstance(e, DdctlError):
            return e.message
    oserrs = [e for e in chain if isinstance(e, OSError) and e.errno]
    for e in oserrs + [e for a in chain for e in getattr(a, "args", ()) if isinstance(e, OSError)]:
        if e.errno == errno.ENOENT:
            return (
                f"Docker is not answering at {where}: the socket does not exist. "
                f"Is the daemon running? {DOCTOR_HINT}"
            )
        if e.errno == errno.ECONNREFUSED:
            if str(where).startswith(("unix://", "npipe://")) or getattr(ep, "is_local_socket", False):
                return (
                    f"Docker is not answering at {where}: nothing is listening there "
                    f"(a stale socket or a stopped daemon). Is the daemon running? {DOCTOR_HINT}"
                )
            return (
                f"Docker is not answering at {where}: the connection was refused (no daemon "
                f"listens on that port: is it stopped, or on another port?). {DOCTOR_HINT}"
            )
        if e.errno == errno.EACCES:
            return (
                f"Permission denied on {where}: this user may not use the Docker socket "
                f"(join the `docker` group and log in again, or use rootless Docker). {DOCTOR_HINT}"
            )
    not_json = any(isinstance(e, json.JSONDecodeError) for e in chain) or "Expecting value: line 1" in text
    page = any(
        isinstance(e, APIError)
        and str(e.explanation or "").lstrip()[:15].lower().startswith(("<!doctype", "<html"))
        for e in chain
    )
    if not_json or page:
        return (
            f"Something answers HTTP at {where}, but it is not a Docker daemon (it sent "
            f"{'a web page' if page else 'an answer that is not Docker JSON'}): point DOCKER_HOST at "
            f"the daemon's address and port. {DOCTOR_HINT}"
        )
    if "Client sent an HTTP request to an HTTPS server" in text:
        return (
            f"{where} speaks TLS but ddctl spoke plain HTTP: set DOCKER_TLS_VERIFY=1 and "
            f"DOCKER_CERT_PATH, or run `eval \"$(ddctl doctor env)\"`. {DOCTOR_HINT}"
        )
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return (
            f"{where} speaks plain HTTP but ddctl spoke TLS: unset DOCKER_TLS_VERIFY and "
            f"DOCKER_CERT_PATH, or use the TLS port (2376). {DOCTOR_HINT}"
        )
    if "certificate" in text and ("verify failed" in text or "mismatch" in text):
        detail = next(
            (str(e.reason) if hasattr(e, "reason") else str(e) for e in chain if isinstance(e, ssl.SSLError)),
            "certificate verify failed",
        )
        return f"The TLS certificates do not fit {where} ({one_line(detail)}). {DOCTOR_HINT}"
    if isinstance(exc, TLSParameterError) or any(isinstance(e, TLSParameterError) for e in chain):
        return f"The TLS files for {where} are unusable: {one_line(text)}. {DOCTOR_HINT}"
    if any(isinstance(e, (requests.exceptions.Timeout,)) for e in chain) or "timed out" in text:
        return f"Docker did not answer at {where} in time. Is the daemon overloaded or unreachable? {DOCTOR_HINT}"
    if "Invalid bind address format" in text or "Invalid port" in text:
        return (
            f"DOCKER_HOST={os.environ.get('DOCKER_HOST', where)!r} is not a valid address: use "
            f"unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://USER@HOST. {DOCTOR_HINT}"
        )
    if "paramiko" in text:
        return f"{where} is an ssh:// endpoint, which needs `pip install paramiko`."
    if any(isinstance(e, requests.exceptions.ConnectionError) for e in chain):
        return f"Docker is not answering at {where}: {one_line(text)}. {DOCTOR_HINT}"
    for e in chain:
        if isinstance(e, APIError):
            return f"Docker at {where} refused: {one_line(e.explanation or str(e))}"
    return f"Docker at {where} failed: {one_line(text)}. {DOCTOR_HINT}"


def _endpoint_for_words() -> Endpoint:
    """The endpoint to name in a sentence (no network traffic; never raises)."""
    try:
        return resolve_endpoint()
    except DdctlError:
        return Endpoint(host=os.environ.get("DOCKER_HOST") or DEFAULT_HOST, source="?")


@contextlib.contextmanager
def handle_connection_errors() -> Iterator[None]:
    """Turn SDK and connection errors raised inside the block into one DockerUnavailable sentence.

    Used once, around the command (ddctl/cli.py); DdctlErrors pass through unchanged.
    """
    try:
        yield
    except DdctlError:
        raise
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(explain(exc)) from exc
