"""Runs the checks in order with one shared Context; skips a check whose prerequisite failed.

A check that does not apply (the socket check for a tcp:// endpoint) returns `skipped`
itself and blocks nothing; a check that failed, or was skipped because something it needs
failed, blocks every check that requires it, and those say which one and why.
"""

import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import docker

from ddctl.client import Endpoint
from ddctl.doctor.result import FAIL, OK, SKIPPED, WARN, CheckResult


@dataclass
class Context:
    """What the checks learn and share (one doctor run)."""

    env: dict = field(default_factory=lambda: dict(os.environ))
    endpoint: Optional[Endpoint] = None  # once resolved
    tls: Optional[dict] = None  # {"ca", "cert", "key", "verify", "dir"} when TLS is on
    found: list = field(default_factory=list)  # live sockets of other engines
    client: Optional[docker.DockerClient] = None  # once the daemon answered
    version: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    engine: str = ""  # Docker Desktop, Podman, rootless Docker, boot2docker, ...
    port_speaks: Optional[str] = None  # "tls" | "plain" for tcp:// endpoints
    timeout: float = 5.0
    results: dict = field(default_factory=dict)

    def close(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                pass
            self.client = None


@dataclass
class Check:
    name: str
    title: str
    func: Callable  # func(ctx) -> CheckResult
    requires: tuple = ()
    group: str = ""  # "" for the setup checks, "security" for security.py's


def run_checks(checks, ctx):
    """Run `checks` (a sequence of Check) in order; return the list of CheckResult."""
    results: list = []
    blocked: dict = {}
    for check in checks:
        why = next(
            (f"needs {check_title(checks, r)}, which {blocked[r]}" for r in check.requires if r in blocked),
            None,
        )
        if why:
            res = CheckResult(check.name, SKIPPED, why)
            blocked[check.name] = "was skipped"
        else:
            try:
                res = check.func(ctx)
            except Exception as exc:  # a bug in a check must not hide the others
                res = CheckResult(
                    check.name,
                    FAIL,
                    f"the check itself crashed: {exc!r}",
                    hint="Please report this with `ddctl --debug doctor -v`.",
                )
            res.name = check.name
            if res.status == FAIL:
                blocked[check.name] = "failed"
            elif res.status == SKIPPED and res.data.pop("blocks", False):
                blocked[check.name] = "was skipped"
        res.title, res.group = check.title, check.group
        ctx.results[check.name] = res
        results.append(res)
    return results


def check_title(checks, name):
    return next((c.title for c in checks if c.name == name), name)


def summarize(results):
    counts = {OK: 0, WARN: 0, FAIL: 0, SKIPPED: 0}
    for r in results:
        counts[r.status] += 1
    return counts


def exit_code(results):
    return 1 if any(r.status == FAIL for r in results) else 0
